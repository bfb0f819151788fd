/**
 * Identity on the consultations page:
 * - not signed in: «Войти через Госуслуги» when the server has ESIA sign-in, the demo login
 *   when it is in demo mode (`GET /auth/options`);
 * - a patient: «Мои данные» — what ESIA gave, when, and the consents given with their versions.
 *
 * Personal data goes into the page as text only and is never logged.
 */

import type { ApiClient, AuthOptions, PersonalData, User } from './api';
import { byTestId, h } from './dom';
import { moment } from './texts';

export interface IdentityHost {
  api: ApiClient;
  generation(): number;
  logFailure(what: string, e: unknown): void;
}

let host: IdentityHost | null = null;
/** Times are in the patient's own zone. */
const HERE = Intl.DateTimeFormat().resolvedOptions().timeZone;
let options: AuthOptions | null = null;

const ui = {
  esia: byTestId('esia-block', HTMLDivElement),
  demo: byTestId('demo-block', HTMLDivElement),
  staffHint: byTestId('login-hint', HTMLParagraphElement),
  section: byTestId('mydata-section', HTMLElement),
  source: byTestId('mydata-source', HTMLParagraphElement),
  list: byTestId('mydata', HTMLDListElement),
  consents: byTestId('mydata-consents', HTMLUListElement),
};

const CONSENT_TEXT: Record<string, string> = {
  personal_data: 'обработка персональных данных',
  health_data: 'обработка сведений о здоровье',
  offer: 'договор-оферта',
};

export function initIdentity(h: IdentityHost): void {
  host = h;
}

/** The login view's choices, as the server offers them (asked once per page). */
export async function showLoginOptions(): Promise<void> {
  if (host === null) return;
  try {
    options ??= await host.api.authOptions();
  } catch (e) {
    host.logFailure('auth options', e);
    // Unknown: offer what the page always had (the demo button says itself if it is off).
    options = { esia: false, devLogin: true, help: null, patientRecordings: false, refundNoticeMinutes: null };
  }
  ui.esia.hidden = !options.esia;
  ui.demo.hidden = !options.devLogin;
  ui.staffHint.textContent = options.esia
    ? 'Для сотрудников клиники.'
    : 'Для сотрудников клиники. Пациенты входят по ссылке из личного кабинета клиники.';
}

/** A date `yyyy-mm-dd` as «14.03.1985». */
function date(iso: string | null): string | null {
  if (iso === null) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  return m === null ? iso : `${m[3]}.${m[2]}.${m[1]}`;
}

function snils(digits: string | null): string | null {
  if (digits === null || digits.length !== 11) return digits;
  return `${digits.slice(0, 3)}-${digits.slice(3, 6)}-${digits.slice(6, 9)} ${digits.slice(9)}`;
}

function render(p: PersonalData): void {
  const d = p.data;
  const name = [d.lastName, d.firstName, d.middleName].filter((x) => x !== null && x !== '').join(' ');
  const passport =
    d.passport === null
      ? null
      : `${d.passport.series} ${d.passport.number}${d.passport.issueDate === null ? '' : `, выдан ${date(d.passport.issueDate)}`}${
          d.passport.issuedBy === null ? '' : `, ${d.passport.issuedBy}`
        }`;
  const rows: [string, string | null][] = [
    ['ФИО', name === '' ? null : name],
    ['Дата рождения', date(d.birthDate)],
    ['Пол', d.gender === 'F' ? 'женский' : d.gender === 'M' ? 'мужской' : null],
    ['СНИЛС', snils(d.snils)],
    ['Полис ОМС', d.omsPolicy],
    ['Паспорт', passport],
    ['Телефон', d.mobile],
    ['Электронная почта', d.email],
    ['Адрес регистрации', d.address],
    ['Учётная запись Госуслуг', d.trusted ? 'подтверждённая' : 'не подтверждена'],
  ];
  ui.list.replaceChildren(
    ...rows.flatMap(([label, value]) => [
      h('dt', { text: label }),
      h('dd', { text: value ?? 'не передано', class: value === null ? 'missing' : '' }),
    ]),
  );
  ui.source.textContent = `Получено с Госуслуг ${moment(p.fetchedAt, HERE)} и обновляется при каждом входе. Клиника видит эти данные; каждое обращение сотрудников к ним записывается в журнал.`;
  ui.consents.replaceChildren(
    ...p.consents.map((c) =>
      h('li', { text: `${CONSENT_TEXT[c.kind] ?? c.kind} — дано ${moment(c.givenAt, HERE)}, версия текста ${c.version}` }),
    ),
  );
}

/** Show (or hide) «Мои данные» for `user`. */
export async function showIdentity(user: User | null): Promise<void> {
  if (host === null || user === null || user.role !== 'patient') {
    ui.section.hidden = true;
    return;
  }
  const gen = host.generation();
  try {
    const p = await host.api.personalData();
    if (gen !== host.generation()) return;
    if (p === null) {
      ui.section.hidden = true;
      return;
    }
    render(p);
    ui.section.hidden = false;
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('personal data', e);
    ui.section.hidden = true;
  }
}
