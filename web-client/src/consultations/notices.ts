/**
 * Notifications on the consultations page:
 * - everyone signed in: which channels their notifications go by, in which order, and linking
 *   MAX through the clinic bot's deep link;
 * - clinic admin: the notification log — each notification with its status on each channel,
 *   and "не сообщает" where a channel cannot report a status (e-mail and MAX never report
 *   delivery) rather than a made-up one.
 */

import { ApiProblem, type ApiClient, type Channel, type MyChannels, type Notice, type Role } from './api';
import { byTestId, h, say } from './dom';
import { errorText, moment } from './texts';

export interface NoticesHost {
  api: ApiClient;
  generation(): number;
  logFailure(what: string, e: unknown): void;
}

let host: NoticesHost | null = null;
/** Times in the log and of a linked account are in the viewer's own zone. */
const HERE = Intl.DateTimeFormat().resolvedOptions().timeZone;

const ui = {
  section: byTestId('notify-section', HTMLElement),
  channels: byTestId('notify-channels', HTMLUListElement),
  fallback: byTestId('notify-fallback', HTMLParagraphElement),
  max: byTestId('notify-max', HTMLDivElement),
  status: byTestId('notify-status', HTMLParagraphElement),
  error: byTestId('notify-error', HTMLParagraphElement),
  save: byTestId('notify-save', HTMLButtonElement),
  reset: byTestId('notify-reset', HTMLButtonElement),
  log: byTestId('notices-section', HTMLElement),
  logTitle: byTestId('notices-title', HTMLHeadingElement),
  logFilter: byTestId('notices-filter', HTMLParagraphElement),
  logAll: byTestId('notices-all', HTMLButtonElement),
  logList: byTestId('notices', HTMLUListElement),
  logEmpty: byTestId('notices-empty', HTMLParagraphElement),
};

export const CHANNEL_TEXT: Record<Channel, string> = {
  email: 'Электронная почта',
  max: 'MAX',
  edna: 'SMS и мессенджеры (по номеру телефона)',
};

const STATUS_TEXT: Record<string, string> = {
  queued: 'в очереди',
  sent: 'отправлено',
  delivered: 'доставлено',
  read: 'прочитано',
  failed: 'не доставлено',
};

const READ_MEANS: Record<Channel, string> = {
  email: '«прочитано» — когда вы откроете ссылку из письма',
  max: '«прочитано» — когда вы нажмёте «Прочитано» под сообщением или откроете ссылку; о доставке MAX не сообщает',
  edna: 'доставку и прочтение сообщает мессенджер; SMS сообщает только доставку',
};

export const EVENT_TEXT: Record<string, string> = {
  'patient.booked': 'Пациенту: запись',
  'patient.paid': 'Пациенту: оплата',
  'patient.cancelled': 'Пациенту: отмена',
  'patient.reminder': 'Пациенту: напоминание',
  'patient.review': 'Пациенту: просьба об отзыве',
  'patient.questionnaire_symptoms': 'Пациенту: анкета перед консультацией',
  'patient.questionnaire_anamnesis': 'Пациенту: анкета о здоровье',
  'patient.deletion_answered': 'Пациенту: ответ на запрос об удалении',
  'patient.deletion_extended': 'Пациенту: срок ответа продлён',
  'patient.rescheduled': 'Пациенту: перенос',
  'doctor.rescheduled': 'Врачу: перенос',
  'doctor.must_close': 'Врачу: закрыть консультацию',
  'doctor.reminder': 'Врачу: напоминание',
  'doctor.cancelled': 'Врачу: отмена',
  'admin.not_closed': 'Администратору: не закрыта вовремя',
  'admin.deletion_request': 'Администратору: запрос на удаление документов',
  'admin.deletion_overdue': 'Администратору: срок ответа на запрос истёк',
  'head_doctor.not_closed': 'Главному врачу: не закрыта вовремя',
};

/** The order being edited: channels in order, each used or not. */
let draft: { channel: Channel; on: boolean }[] = [];
let current: MyChannels | null = null;
/** The consultation the log is filtered by, if any. */
let logConsultation: string | null = null;

export function initNotices(h0: NoticesHost): void {
  host = h0;
  ui.save.addEventListener('click', () => void save(false));
  ui.reset.addEventListener('click', () => void save(true));
  ui.logAll.addEventListener('click', () => {
    logConsultation = null;
    void loadLog();
  });
}

export function showNotices(role: Role | null): void {
  ui.section.hidden = true;
  ui.log.hidden = role !== 'admin';
  if (role === null) return;
  void loadMine();
  if (role === 'admin') void loadLog();
}

export function resetNotices(): void {
  draft = [];
  current = null;
  logConsultation = null;
  ui.channels.replaceChildren();
  ui.max.replaceChildren();
  ui.logList.replaceChildren();
  for (const el of [ui.status, ui.fallback]) el.textContent = '';
  for (const el of [ui.error, ui.logEmpty]) say(el, null);
}

export function refreshNotices(role: Role): void {
  if (role === 'admin') void loadLog();
}

/** Show the log of one consultation's notifications (from its row on the admin's list). */
export function showConsultationLog(consultationId: string): void {
  logConsultation = consultationId;
  void loadLog().then(() => ui.logTitle.focus());
}

// ---- my channels ---------------------------------------------------------------------------

async function loadMine(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const mine = await host.api.myChannels();
    if (gen !== host.generation()) return;
    render(mine);
    ui.section.hidden = false;
  } catch (e) {
    if (gen !== host.generation()) return;
    // 404: the clinic sends no notifications (no e-mail configured): nothing to choose.
    if (e instanceof ApiProblem && e.status === 404) return;
    host.logFailure('loading the notification settings', e);
    ui.section.hidden = false;
    say(ui.error, `Не удалось загрузить настройки уведомлений. ${errorText(e)}`);
  }
}

function render(mine: MyChannels): void {
  current = mine;
  const enabled = mine.channels.filter((c) => c.enabled).map((c) => c.channel);
  draft = [
    ...mine.order.filter((c) => enabled.includes(c)).map((channel) => ({ channel, on: true })),
    ...enabled.filter((c) => !mine.order.includes(c)).map((channel) => ({ channel, on: false })),
  ];
  ui.fallback.textContent = mine.fallback
    ? 'Сообщение приходит первым отмеченным способом; если он не сработает — следующим.'
    : 'Сообщение приходит первым отмеченным способом, который вам доступен.';
  renderDraft();
  renderMax(mine);
}

function renderDraft(): void {
  if (current === null) return;
  const mine = current;
  ui.channels.replaceChildren(
    ...draft.map((d, i) => {
      const info = mine.channels.find((c) => c.channel === d.channel);
      const id = `notify-${d.channel}`;
      const box = h('input', { testid: 'notify-use', attrs: { type: 'checkbox', id } });
      box.checked = d.on;
      box.addEventListener('change', () => {
        d.on = box.checked;
      });
      const up = h('button', {
        class: 'button secondary small',
        testid: 'notify-up',
        text: 'Выше',
        attrs: { type: 'button', 'aria-label': `${CHANNEL_TEXT[d.channel]}: выше в списке` },
      });
      up.disabled = i === 0;
      up.addEventListener('click', () => {
        const [moved] = draft.splice(i, 1);
        if (moved !== undefined) draft.splice(i - 1, 0, moved);
        renderDraft();
        ui.channels.querySelectorAll<HTMLButtonElement>('[data-testid="notify-up"]')[i - 1]?.focus();
      });
      const state =
        info?.reachable === true
          ? 'доступно'
          : d.channel === 'max'
            ? 'не подключено'
            : d.channel === 'email'
              ? 'нет адреса'
              : 'нет номера телефона';
      return h(
        'li',
        { class: 'channel', testid: 'notify-channel', attrs: { 'data-channel': d.channel } },
        h(
          'div',
          { class: 'channel-main' },
          h('label', { class: 'choice', attrs: { for: id } }, box, h('span', { text: `${i + 1}. ${CHANNEL_TEXT[d.channel]}` })),
          up,
        ),
        h('p', {
          class: 'c-sub',
          text: `${state[0]?.toUpperCase() ?? ''}${state.slice(1)}; ${READ_MEANS[d.channel]}.`,
        }),
      );
    }),
  );
}

function renderMax(mine: MyChannels): void {
  const max = mine.channels.find((c) => c.channel === 'max');
  if (max === undefined || !max.enabled) {
    ui.max.replaceChildren();
    return;
  }
  if (mine.maxLinkedAt !== null) {
    const unlink = h('button', {
      class: 'button secondary',
      testid: 'max-unlink',
      text: 'Отключить MAX',
      attrs: { type: 'button' },
    });
    const api = host?.api;
    if (api !== undefined) unlink.addEventListener('click', () => void run(unlink, () => api.unlinkMax(), 'MAX отключён.'));
    ui.max.replaceChildren(
      h('p', { class: 'notice-line', testid: 'max-linked', text: `MAX подключён ${moment(mine.maxLinkedAt, HERE)}.` }),
      h('div', { class: 'actions' }, unlink),
    );
    return;
  }
  const link = h('button', {
    class: 'button secondary',
    testid: 'max-link',
    text: 'Подключить MAX',
    attrs: { type: 'button' },
  });
  link.addEventListener('click', () => void linkMax(link));
  ui.max.replaceChildren(
    h('p', { class: 'hint', text: 'Подключите MAX, чтобы уведомления приходили в чат с ботом клиники.' }),
    h('div', { class: 'actions' }, link),
  );
}

async function linkMax(button: HTMLButtonElement): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  button.disabled = true;
  say(ui.error, null);
  try {
    const { url } = await host.api.linkMax();
    if (gen !== host.generation()) return;
    const open = h('a', {
      class: 'button primary',
      testid: 'max-open',
      text: 'Открыть бота в MAX',
      attrs: { href: url, target: '_blank', rel: 'noopener noreferrer' },
    });
    ui.max.replaceChildren(
      h('p', {
        class: 'hint',
        text: 'Откройте бота и нажмите «Начать» — ссылка действует 30 минут. Затем обновите эту страницу.',
      }),
      h('div', { class: 'actions' }, open),
    );
    open.focus();
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('linking MAX', e);
    say(ui.error, errorText(e));
    button.disabled = false;
  }
}

async function run(button: HTMLButtonElement, call: () => Promise<MyChannels>, done: string): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  button.disabled = true;
  say(ui.error, null);
  try {
    const mine = await call();
    if (gen !== host.generation()) return;
    render(mine);
    ui.status.textContent = done;
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('saving the notification settings', e);
    say(ui.error, errorText(e));
  } finally {
    button.disabled = false;
  }
}

async function save(reset: boolean): Promise<void> {
  if (host === null) return;
  const chosen = draft.filter((d) => d.on).map((d) => d.channel);
  if (!reset && chosen.length === 0) {
    say(ui.error, 'Отметьте хотя бы один способ.');
    return;
  }
  const api = host.api;
  await run(
    reset ? ui.reset : ui.save,
    () => api.chooseChannels(reset ? null : chosen),
    reset ? 'Восстановлен порядок клиники.' : 'Сохранено.',
  );
}

// ---- the clinic's log ----------------------------------------------------------------------

async function loadLog(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const page = await host.api.notices(logConsultation, 20);
    if (gen !== host.generation()) return;
    ui.logFilter.textContent =
      logConsultation === null
        ? `Последние уведомления (${Math.min(page.items.length, page.total)} из ${page.total}).`
        : `Уведомления консультации № ${logConsultation.slice(0, 8)}.`;
    ui.logAll.hidden = logConsultation === null;
    ui.logList.replaceChildren(...page.items.map(noticeItem));
    say(ui.logEmpty, page.items.length > 0 ? null : 'Уведомлений нет.');
  } catch (e) {
    if (gen !== host.generation()) return;
    if (e instanceof ApiProblem && e.status === 404) {
      ui.log.hidden = true;
      return;
    }
    host.logFailure('loading the notification log', e);
    say(ui.logEmpty, `Не удалось загрузить журнал. ${errorText(e)}`);
  }
}

function noticeItem(n: Notice): HTMLLIElement {
  const li = h('li', { class: 'consultation', testid: 'notice', attrs: { 'data-event': n.event } });
  li.append(
    h(
      'div',
      { class: 'c-head' },
      h(
        'div',
        { class: 'c-who' },
        h('h3', { class: 'c-title', text: EVENT_TEXT[n.event] ?? n.event }),
        h('p', {
          class: 'c-sub',
          text: `${moment(n.createdAt, HERE)}${n.consultationId === null ? '' : ` · консультация № ${n.consultationId.slice(0, 8)}`}`,
        }),
      ),
    ),
  );
  if (n.deliveries.length === 0) li.append(h('p', { class: 'c-meta', text: 'Ещё не отправлено.' }));
  for (const d of n.deliveries) {
    const table = h('dl', { class: 'answers delivery', testid: 'delivery', attrs: { 'data-channel': d.channel } });
    for (const status of ['sent', 'delivered', 'read'] as const) {
      const at = status === 'sent' ? d.sentAt : status === 'delivered' ? d.deliveredAt : d.readAt;
      const value = at !== null ? moment(at, HERE) : d.reports.includes(status) ? '—' : 'канал не сообщает';
      table.append(h('dt', { text: STATUS_TEXT[status] ?? status }), h('dd', { testid: `delivery-${status}`, text: value }));
    }
    li.append(
      h('p', {
        class: 'c-label',
        text: `${CHANNEL_TEXT[d.channel as Channel] ?? d.channel}: ${STATUS_TEXT[d.status] ?? d.status}`,
      }),
      table,
    );
    if (d.detail !== null) li.append(h('p', { class: 'c-meta c-warn', testid: 'delivery-detail', text: detailText(d.detail) }));
  }
  return li;
}

/** Vizit's own reasons in words; a channel's own answer as it came (it names the fault). */
function detailText(detail: string): string {
  if (detail.startsWith('no channel reaches the recipient')) {
    return 'Не на что отправить: у получателя нет e-mail, телефона и подключённого MAX.';
  }
  return `Ответ канала: ${detail}`;
}
