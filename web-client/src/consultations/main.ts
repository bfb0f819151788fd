/**
 * Entry point of the "my consultations" page (`/consultations`).
 *
 * - Not logged in: «Войти через Госуслуги» (when the server has it), the staff login form and
 *   the demo-patient button.
 * - Patient: their consultations (pay, join, cancel; refund state) and booking (doctor → free
 *   slot → book). Back from the payment page (`/pay/return?consultation=…`), the result as the
 *   server has it — the redirect itself proves nothing.
 * - Doctor: their consultations (join, complete with a conclusion).
 * - Admin, head doctor: all consultations, and the overdue ones.
 *
 * The session token lives in sessionStorage (see `session.ts`) — or, after a sign-in through
 * ESIA, in an HttpOnly cookie the page never sees; any 401 answer drops it and
 * brings back the login form. Nothing is logged to the console but the kind of a failure:
 * tokens, names and conclusions are personal data.
 */

import {
  ApiClient,
  ApiProblem,
  type Consultation,
  type Doctor,
  type ListFilter,
  type Payment,
  type Recording,
  type Role,
  type Slot,
  type User,
} from './api';
import { byTestId, confirmAction, disclosure, h, reconcile, say } from './dom';
import { chatPanel, hasChat, initChat } from './chat';
import { initDocuments, questionnairePanel, refreshDocuments, resetDocuments, showDocuments } from './documents';
import { initIdentity, showIdentity, showLoginOptions } from './identity';
import { initNotices, refreshNotices, resetNotices, showConsultationLog, showNotices } from './notices';
import {
  initAdmin,
  mayRefund,
  mayReschedule,
  refreshAdmin,
  refundPanel,
  reschedulePanel,
  resetAdmin,
  showAdmin,
  refundsGoing,
  showAuditOf,
} from './admin';
import { type Picking, renderPicker } from './picker';
import { clearToken, loadToken, saveToken, takeTokenFromFragment } from './session';
import {
  RECORDING_STATUS_TEXT,
  ROLE_TEXT,
  STATUS_TEXT,
  TEXT,
  declineText,
  duration,
  errorText,
  moment,
  price,
  size,
  clockIn,
  dayKey,
  dayRange,
  slotTime,
  viewerZone,
} from './texts';

/** Consultations per list request (the API allows up to 200). */
const PAGE_SIZE = 100;
/** The list refreshes itself this often while the tab is visible (e.g. to show a payment). */
const POLL_MS = 30_000;
const DEMO_PATIENT_NAME = 'Пациент (демо)';
/** The result of a payment is checked this often while the bank has not answered, then less often. */
const PAY_POLL_MS = 1_500;
const PAY_POLL_SLOW_MS = 10_000;
const PAY_PATIENCE_MS = 60_000;
/** How often a refund that is still on its way is asked about again. */
const REFUND_POLL_MS = 3_000;

const RECORDINGS_HINT_CLINIC = 'Скачивание доступно администраторам и главному врачу; каждое скачивание записывается в журнал.';
const RECORDINGS_HINT_PATIENT = 'Записи ваших консультаций. Каждое скачивание записывается в журнал клиники.';

/** Back from the payment page: `/pay/return?consultation=<id>`. */
const returnConsultation: string | null =
  window.location.pathname === '/pay/return' ? new URLSearchParams(window.location.search).get('consultation') : null;

type View = 'loading' | 'login' | 'patient' | 'doctor' | 'clinic';

const ui = {
  portal: byTestId('portal', HTMLDivElement),
  who: byTestId('who', HTMLSpanElement),
  whoName: byTestId('who-name', HTMLSpanElement),
  logout: byTestId('logout', HTMLButtonElement),
  pageMessage: byTestId('page-message', HTMLParagraphElement),
  loading: byTestId('loading', HTMLDivElement),
  retry: byTestId('retry', HTMLButtonElement),

  login: byTestId('login', HTMLElement),
  loginTitle: byTestId('login', HTMLElement).querySelector('h1'),
  loginForm: byTestId('login-form', HTMLFormElement),
  loginEmail: byTestId('login-email', HTMLInputElement),
  loginPassword: byTestId('login-password', HTMLInputElement),
  loginSubmit: byTestId('login-submit', HTMLButtonElement),
  loginError: byTestId('login-error', HTMLParagraphElement),
  demoLogin: byTestId('demo-login', HTMLButtonElement),
  demoError: byTestId('demo-error', HTMLParagraphElement),

  listSection: byTestId('consultations-section', HTMLElement),
  listTitle: byTestId('list-title', HTMLHeadingElement),
  refresh: byTestId('refresh', HTMLButtonElement),
  listStatus: byTestId('list-status', HTMLParagraphElement),
  list: byTestId('consultations', HTMLUListElement),
  listEmpty: byTestId('consultations-empty', HTMLParagraphElement),
  moreWrap: byTestId('more-wrap', HTMLDivElement),
  more: byTestId('more', HTMLButtonElement),

  overdueSection: byTestId('overdue-section', HTMLElement),
  overdueList: byTestId('overdue', HTMLUListElement),
  overdueEmpty: byTestId('overdue-empty', HTMLParagraphElement),
  recordingsSection: byTestId('recordings-section', HTMLElement),
  recordingsList: byTestId('recordings', HTMLUListElement),
  recordingsEmpty: byTestId('recordings-empty', HTMLParagraphElement),
  recordingsHint: byTestId('recordings-hint', HTMLParagraphElement),

  payResult: byTestId('pay-result', HTMLElement),
  payResultTitle: byTestId('pay-result-title', HTMLHeadingElement),
  payResultState: byTestId('pay-result-state', HTMLParagraphElement),
  payAgain: byTestId('pay-again', HTMLButtonElement),

  bookingSection: byTestId('booking-section', HTMLElement),
  doctors: byTestId('doctors', HTMLUListElement),
  bookingStatus: byTestId('booking-status', HTMLParagraphElement),
  bookingError: byTestId('booking-error', HTMLParagraphElement),
  slots: byTestId('slots', HTMLUListElement),
  filters: byTestId('filters', HTMLFormElement),
  help: byTestId('help', HTMLParagraphElement),
  search: byTestId('search', HTMLInputElement),
  statusFilter: byTestId('status-filter', HTMLSelectElement),
  dayFilter: byTestId('day-filter', HTMLInputElement),
  days: byTestId('days', HTMLElement),
  zoneNote: byTestId('zone-note', HTMLParagraphElement),
  bookingConfirm: byTestId('booking-confirm', HTMLElement),
  confirmDoctor: byTestId('confirm-doctor', HTMLElement),
  confirmWhen: byTestId('confirm-when', HTMLElement),
  confirmPrice: byTestId('confirm-price', HTMLElement),
  bookConfirm: byTestId('book-confirm', HTMLButtonElement),
  bookBack: byTestId('book-back', HTMLButtonElement),
  ruleCancel: byTestId('rule-cancel', HTMLLIElement),
  bookingPay: byTestId('booking-pay', HTMLElement),
  paystepDoctor: byTestId('paystep-doctor', HTMLElement),
  paystepWhen: byTestId('paystep-when', HTMLElement),
  paystepBy: byTestId('paystep-by', HTMLElement),
  paystepError: byTestId('paystep-error', HTMLParagraphElement),
  paystepPay: byTestId('paystep-pay', HTMLButtonElement),
  paystepLater: byTestId('paystep-later', HTMLButtonElement),
};

// ---- state ---------------------------------------------------------------------------------

let user: User | null = null;
/** The clinic lets patients download their consultations' recordings (`/auth/options`). */
let patientRecordings = false;
/** Bumped on every sign-in and sign-out: answers to requests of an earlier session are dropped. */
let generation = 0;
let loggingOut = false;

/** The consultations loaded so far (pages 0..pages-1), by id, and the server's total. */
let consultations = new Map<string, Consultation>();
let total = 0;
let pages = 1;
/** Rendered rows by consultation id; a row is rebuilt only when its consultation changed. */
const rows = new Map<string, HTMLLIElement>();
/** Unsent conclusions by consultation id: a rebuilt row gets its draft back. */
const drafts = new Map<string, string>();
/** Consultations with a request (join, cancel, complete) in flight. */
const busy = new Set<string>();

let pollTimer: number | null = null;
let payTimer: number | null = null;
/** What each cancelled paid consultation's refund looks like, once asked (by consultation id). */
const refundTexts = new Map<string, string>();
/** Rows whose cancellation form or recordings are open: a re-render keeps them open. */
const openCancels = new Set<string>();
const openRecordings = new Set<string>();

/** Page load without a token: asking whether a session cookie is there; a 401 is no news. */
let probing = false;

const api = new ApiClient({
  token: loadToken,
  onUnauthorized: () => {
    if (!loggingOut && !probing) signOut(TEXT.sessionExpired);
  },
});

const isUnauthorized = (e: unknown): boolean => e instanceof ApiProblem && e.status === 401;

/** Log what kind of failure happened — never the request, the answer or the token. */
function logFailure(what: string, e: unknown): void {
  const kind = e instanceof ApiProblem ? `HTTP ${e.status} ${e.code}` : e instanceof Error ? e.name : 'error';
  console.warn(`vizit: ${what} failed (${kind})`);
}

// ---- views ---------------------------------------------------------------------------------

function showView(view: View): void {
  ui.portal.dataset['view'] = view;
  const signedIn = view === 'patient' || view === 'doctor' || view === 'clinic';
  ui.loading.hidden = view !== 'loading';
  ui.login.hidden = view !== 'login';
  ui.listSection.hidden = !signedIn;
  ui.bookingSection.hidden = view !== 'patient';
  ui.payResult.hidden = view !== 'patient' || returnConsultation === null;
  ui.overdueSection.hidden = view !== 'clinic';
  ui.recordingsSection.hidden = view !== 'clinic';
  ui.filters.hidden = view !== 'clinic';
  ui.who.hidden = !signedIn;
}

function viewFor(role: Role): View {
  switch (role) {
    case 'patient':
      return 'patient';
    case 'doctor':
      return 'doctor';
    case 'admin':
    case 'head_doctor':
      return 'clinic';
  }
}

function focusHeading(el: HTMLElement | null): void {
  el?.focus({ preventScroll: false });
}

function resetSignedInState(): void {
  stopPolling();
  stopPaymentResult();
  refundTexts.clear();
  openCancels.clear();
  openRecordings.clear();
  consultations = new Map();
  total = 0;
  pages = 1;
  rows.clear();
  drafts.clear();
  busy.clear();
  ui.list.replaceChildren();
  ui.overdueList.replaceChildren();
  ui.recordingsList.replaceChildren();
  ui.slots.replaceChildren();
  ui.doctors.replaceChildren();
  doctors = [];
  picking.doctorId = '';
  picking.slots = [];
  picking.day = null;
  picking.chosen = null;
  ui.days.replaceChildren();
  ui.days.hidden = true;
  say(ui.zoneNote, null);
  ui.filters.reset();
  ui.recordingsHint.textContent = RECORDINGS_HINT_CLINIC;
  ui.recordingsSection.hidden = true;
  ui.bookingPay.hidden = true;
  ui.bookingConfirm.hidden = true;
  for (const el of [ui.listStatus, ui.bookingStatus]) el.textContent = '';
  for (const el of [ui.listEmpty, ui.overdueEmpty, ui.recordingsEmpty, ui.bookingError, ui.loginError, ui.demoError]) {
    say(el, null);
  }
  ui.moreWrap.hidden = true;
  resetDocuments();
  resetNotices();
  resetAdmin();
}

/** `focus`: move the focus to the list's heading (after a login, not on page load). */
function signIn(u: User, focus = true): void {
  generation += 1;
  resetSignedInState();
  // Where to get help, as the clinic says, and whether patients get their recordings (patients).
  ui.help.hidden = true;
  patientRecordings = false;
  if (u.role === 'patient') {
    const gen = generation;
    void api
      .authOptions()
      .then((o) => {
        if (gen !== generation) return;
        say(ui.help, o.help === null ? null : `Помощь: ${o.help}`);
        patientRecordings = o.patientRecordings;
        if (o.refundNoticeMinutes !== null) {
          const m = o.refundNoticeMinutes;
          const ahead = m % 60 === 0 ? `${m / 60} ч` : `${m} мин`;
          ui.ruleCancel.textContent = `Отменить запись можно здесь же, в личном кабинете. Деньги за оплаченную консультацию вернутся полностью, если отменить её не позже чем за ${ahead} до начала.`;
        }
        if (!patientRecordings) return;
        ui.recordingsHint.textContent = RECORDINGS_HINT_PATIENT;
        ui.recordingsSection.hidden = false;
        void loadRecordings();
      })
      .catch(() => {});
  }
  user = u;
  // The role, unless the name says it already («Пациент (демо)»).
  const role = ROLE_TEXT[u.role];
  ui.whoName.textContent = u.name.toLowerCase().includes(role) ? u.name : `${u.name} · ${role}`;
  say(ui.pageMessage, null);
  const view = viewFor(u.role);
  ui.listTitle.textContent = view === 'clinic' ? TEXT.allConsultations : TEXT.myConsultations;
  document.title = `${ui.listTitle.textContent} — Vizit`;
  showView(view);
  if (focus) focusHeading(ui.listTitle);
  void refreshList();
  if (view === 'patient') void loadDoctors();
  if (view === 'patient' && returnConsultation !== null) startPaymentResult(focus);
  if (view === 'clinic') {
    void loadOverdue();
    void loadRecordings();
  }
  showDocuments(u.role);
  showNotices(u.role);
  showAdmin(u.role);
  refreshAdmin(u.role);
  void showIdentity(u);
  startPolling();
}

/** Back to the login form, with `message` (e.g. why) or none; `focus` as for {@link signIn}. */
function signOut(message: string | null, focus = true): void {
  generation += 1;
  clearToken();
  user = null;
  resetSignedInState();
  showDocuments(null);
  showNotices(null);
  showAdmin(null);
  void showIdentity(null);
  void showLoginOptions();
  document.title = 'Вход — Vizit';
  showView('login');
  say(ui.pageMessage, message);
  ui.demoLogin.disabled = false;
  ui.loginSubmit.disabled = false;
  if (focus) focusHeading(ui.loginTitle);
}

// ---- the consultations list ----------------------------------------------------------------

const ACTIVE = new Set(['booked', 'paid', 'in_progress']);

/** Open consultations first, soonest first; then closed ones, latest first. */
function compare(a: Consultation, b: Consultation): number {
  const aActive = ACTIVE.has(a.status);
  const bActive = ACTIVE.has(b.status);
  if (aActive !== bActive) return aActive ? -1 : 1;
  const order = a.startsAt < b.startsAt ? -1 : a.startsAt > b.startsAt ? 1 : 0;
  return aActive ? order : -order;
}

let listLoad: Promise<void> | null = null;
let listAgain = false;

/** Reload the list; calls during a load are folded into one more load after it. */
function refreshList(): Promise<void> {
  if (listLoad !== null) {
    listAgain = true;
    return listLoad;
  }
  listLoad = (async () => {
    do {
      listAgain = false;
      await loadListOnce();
    } while (listAgain);
  })().finally(() => {
    listLoad = null;
  });
  return listLoad;
}

/** The clinic's search and status filter over the list (staff only; empty for others). */
function listFilter(): ListFilter {
  if (ui.filters.hidden) return {};
  return { q: ui.search.value, status: ui.statusFilter.value, ...dayRange(ui.dayFilter.value) };
}

async function loadListOnce(): Promise<void> {
  const gen = generation;
  if (user === null) return;
  ui.list.setAttribute('aria-busy', 'true');
  try {
    const fresh = new Map<string, Consultation>();
    let count = 0;
    for (let p = 0; p < pages; p++) {
      const page = await api.consultations(PAGE_SIZE, p * PAGE_SIZE, listFilter());
      if (gen !== generation) return;
      for (const c of page.items) fresh.set(c.id, c);
      count = page.total;
      if ((p + 1) * PAGE_SIZE >= page.total) break;
    }
    consultations = fresh;
    total = count;
    renderList();
    if (ui.listStatus.dataset['kind'] === 'error') setListStatus(null);
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the consultations', e);
    setListStatus(`Не удалось загрузить список. ${errorText(e)}`, 'error');
  } finally {
    if (gen === generation) ui.list.removeAttribute('aria-busy');
  }
}

function setListStatus(text: string | null, kind: 'info' | 'error' = 'info'): void {
  ui.listStatus.textContent = text ?? '';
  ui.listStatus.dataset['kind'] = kind;
}

function renderList(): void {
  if (user === null) return;
  const sorted = [...consultations.values()].sort(compare);
  const present = new Set(sorted.map((c) => c.id));
  for (const id of [...rows.keys()]) if (!present.has(id)) rows.delete(id);
  reconcile(ui.list, grouped(sorted));
  // The payment step is over once its consultation is no longer waiting for the money.
  const stepFor = consultations.get(ui.bookingPay.dataset['consultationId'] ?? '');
  if (!ui.bookingPay.hidden && stepFor?.status !== 'booked') ui.bookingPay.hidden = true;
  const f = listFilter();
  const filtered = (f.q ?? '').trim().length >= 2 || (f.status ?? '') !== '' || (f.from ?? '') !== '';
  say(
    ui.listEmpty,
    sorted.length > 0
      ? null
      : filtered
        ? 'Ничего не найдено: проверьте имя или выберите другой статус.'
        : user.role === 'patient'
          ? TEXT.noConsultationsPatient
          : TEXT.noConsultations,
  );
  ui.moreWrap.hidden = consultations.size >= total;
  // The payment result stays true only while the consultation stays paid (e.g. not once the
  // patient cancels it right after).
  const returned = returnConsultation === null ? undefined : consultations.get(returnConsultation);
  if (
    returned !== undefined &&
    ui.payResultState.dataset['state'] === 'paid' &&
    (returned.status === 'cancelled' || returned.status === 'expired')
  ) {
    ui.payResult.hidden = true;
  }
}

/** The list's day groups (a doctor's day): «Сегодня», «Предстоящие», «Прошедшие и отменённые». */
const GROUP_TEXT = { today: 'Сегодня', upcoming: 'Предстоящие', past: 'Прошедшие и отменённые' } as const;
const groupHeads = new Map<keyof typeof GROUP_TEXT, HTMLLIElement>();

function groupOf(c: Consultation, today: string, zone: string): keyof typeof GROUP_TEXT {
  if (!ACTIVE.has(c.status)) return 'past';
  return dayKey(new Date(c.startsAt), zone) <= today ? 'today' : 'upcoming';
}

/** The rows, with a heading before each group when there is more than one. */
function grouped(sorted: Consultation[]): HTMLLIElement[] {
  const zone = viewerZone();
  const today = dayKey(new Date(), zone);
  const groups = sorted.map((c) => groupOf(c, today, zone));
  if (new Set(groups).size < 2) return sorted.map(rowFor);
  const out: HTMLLIElement[] = [];
  sorted.forEach((c, i) => {
    const g = groups[i] ?? 'past';
    if (i === 0 || groups[i - 1] !== g) {
      let head = groupHeads.get(g);
      if (head === undefined) {
        head = h('li', { class: 'list-group', testid: 'list-group', attrs: { 'data-group': g } }, h('h3', { text: GROUP_TEXT[g] }));
        groupHeads.set(g, head);
      }
      out.push(head);
    }
    out.push(rowFor(c));
  });
  return out;
}

function rowFor(c: Consultation): HTMLLIElement {
  // The row also changes when its call window opens («Записи» appear then).
  const sig = `${JSON.stringify(c)}|${String(mayHaveCalled(c))}`;
  const old = rows.get(c.id);
  if (old !== undefined && old.dataset['sig'] === sig) return old;
  const li = renderConsultation(c, 'list');
  li.dataset['sig'] = sig;
  rows.set(c.id, li);
  if (busy.has(c.id)) setRowBusy(li, true);
  return li;
}

/** Who the row is about, from the viewer's side. */
function rowTitle(c: Consultation, role: Role): { title: string; subtitle: string } {
  switch (role) {
    case 'patient':
      return { title: c.doctor.name, subtitle: c.doctor.specialty };
    case 'doctor':
      return { title: c.patient.name, subtitle: 'Пациент' };
    case 'admin':
    case 'head_doctor':
      return { title: c.patient.name, subtitle: `Врач: ${c.doctor.name}, ${c.doctor.specialty}` };
  }
}

function renderConsultation(c: Consultation, place: 'list' | 'overdue' | 'conflict'): HTMLLIElement {
  const role = user?.role ?? 'patient';
  const prefix = { list: 'c', overdue: 'o', conflict: 'x' }[place];
  const titleId = `${prefix}-${c.id}-title`;
  const timeId = `${prefix}-${c.id}-time`;
  const { title, subtitle } = rowTitle(c, role);
  const { when, zone } = slotTime(c.startsAt, c.endsAt, c.timeZone);

  const li = h('li', {
    class: 'consultation',
    testid: { list: 'consultation', overdue: 'overdue-consultation', conflict: 'conflict-consultation' }[place],
    attrs: { 'data-consultation-id': c.id, 'data-status': c.status, 'aria-labelledby': `${titleId} ${timeId}` },
  });

  const heading = h(place === 'list' ? 'h2' : 'h3', { class: 'c-title', text: title, attrs: { id: titleId } });
  li.append(
    h(
      'div',
      { class: 'c-head' },
      h('div', { class: 'c-who' }, heading, h('p', { class: 'c-sub', text: subtitle })),
      h('span', {
        class: 'status',
        testid: 'consultation-status',
        text: STATUS_TEXT[c.status],
        attrs: { 'data-status': c.status },
      }),
    ),
    h(
      'p',
      { class: 'c-time', attrs: { id: timeId } },
      h('time', { text: when, attrs: { datetime: c.startsAt } }),
      h('span', { class: 'zone', text: zone }),
    ),
  );

  const meta = h('p', { class: 'c-meta' }, h('span', { text: `Стоимость: ${price(c.priceKopecks)}` }));
  if (c.status === 'booked') {
    meta.append(
      h('span', {
        class: 'c-warn',
        text: `Оплатите до ${moment(c.payBy, c.timeZone)}, иначе запись отменится`,
      }),
    );
  }
  if (c.overdue && role !== 'patient') meta.append(h('span', { class: 'c-warn', text: 'Не закрыта вовремя' }));
  if (c.slotConflict !== null && role !== 'patient') {
    meta.append(h('span', { class: 'c-warn', testid: 'slot-conflict', text: 'Время изменилось в расписании клиники' }));
  }
  li.append(meta);

  if (c.status === 'completed' && c.conclusion !== null) {
    li.append(
      h(
        'div',
        { class: 'c-conclusion' },
        h('p', { class: 'c-label', text: 'Заключение врача' }),
        h('p', { class: 'c-text', testid: 'conclusion-text', text: c.conclusion }),
      ),
    );
  }
  if (c.status === 'cancelled' && c.cancelReason !== null) {
    li.append(h('p', { class: 'c-meta', text: `Причина отмены: ${c.cancelReason}` }));
  }
  if (c.status === 'cancelled' && c.paidAt !== null && role === 'patient' && place === 'list') {
    const refund = h('p', { class: 'c-meta', testid: 'refund-state', text: refundTexts.get(c.id) ?? TEXT.loading });
    li.append(refund);
    if (!refundTexts.has(c.id)) void loadRefund(c, refund);
  }

  if (place === 'list') appendActions(li, c, role, titleId);
  return li;
}

function rowError(li: HTMLElement): HTMLParagraphElement {
  return byTestId('row-error', HTMLParagraphElement, li);
}

function setRowBusy(li: HTMLElement, on: boolean): void {
  li.setAttribute('aria-busy', String(on));
  for (const el of li.querySelectorAll<HTMLButtonElement | HTMLTextAreaElement>('button, textarea')) el.disabled = on;
}

function appendActions(li: HTMLLIElement, c: Consultation, role: Role, titleId: string): void {
  const open = c.status === 'paid' || c.status === 'in_progress';
  const actions = h('div', { class: 'actions' });
  const error = h('p', { class: 'form-error', testid: 'row-error', attrs: { role: 'alert' } });
  error.hidden = true;

  const opens = c.joinOpensAt === null ? null : Date.parse(c.joinOpensAt);
  const closes = c.joinClosesAt === null ? null : Date.parse(c.joinClosesAt);
  const now = Date.now();
  if ((role === 'patient' || role === 'doctor') && open && (closes === null || now <= closes)) {
    const early = opens !== null && now < opens;
    const join = h('button', {
      class: 'button primary',
      testid: 'join-consultation',
      text: early ? `Звонок откроется в ${clockIn(c.joinOpensAt ?? '', viewerZone())}` : 'Присоединиться к звонку',
      attrs: { type: 'button', 'aria-describedby': titleId },
    });
    join.disabled = early;
    join.addEventListener('click', () => void joinCall(c, li));
    actions.append(join);
    // The button opens by itself when the window does (a timer per row, not a reload).
    if (early && opens !== null && opens - now < 24 * 3_600_000) {
      window.setTimeout(() => {
        if (!join.isConnected) return;
        join.disabled = false;
        join.textContent = 'Присоединиться к звонку';
      }, opens - now + 500);
    }
  }
  let payForm: HTMLFormElement | null = null;
  if (role === 'patient' && c.status === 'booked') {
    const pay = h('button', {
      class: 'button primary',
      testid: 'pay-consultation',
      text: `Оплатить ${price(c.priceKopecks)}`,
      attrs: { type: 'button', 'aria-describedby': titleId },
    });
    payForm = payContactForm(c, li, titleId);
    const form = payForm;
    pay.addEventListener('click', () => void payConsultation(c, li, form));
    actions.append(pay);
  }
  // The clinic's actions on a consultation: take a payment at the desk, cancel with a reason.
  if (role === 'admin' && c.status === 'booked') {
    const paid = h('button', {
      class: 'button secondary',
      testid: 'mark-paid',
      text: 'Отметить оплату',
      attrs: { type: 'button', 'aria-describedby': titleId },
    });
    paid.addEventListener('click', async () => {
      const { title } = rowTitle(c, role);
      const when = slotTime(c.startsAt, c.endsAt, c.timeZone).when;
      const yes = await confirmAction(
        'Отметить оплату?',
        `${title}, ${when}. Пациент заплатил в клинике, не через ЮKassa; консультация станет оплаченной.`,
        'Отметить оплату',
      );
      if (!yes) return;
      void rowAction(c, li, async () => {
        const updated = await api.markPaid(c.id);
        consultations.set(updated.id, updated);
        renderList();
        setListStatus('Оплата отмечена.');
      });
    });
    actions.append(paid);
  }
  const move = mayReschedule(c, role) ? reschedulePanel(c, titleId, role) : null;
  if (move !== null) actions.append(move[0]);
  const refund = mayRefund(c, role) ? refundPanel(c, titleId) : null;
  if (refund !== null) actions.append(refund[0]);
  const cancel =
    (role === 'patient' || role === 'admin') && (c.status === 'booked' || c.status === 'paid')
      ? disclosure({
          key: c.id,
          text: 'Отменить',
          testid: 'cancel-consultation',
          panelTestid: 'cancel-panel',
          panelClass: 'c-documents cancel-form',
          describedBy: titleId,
          open: openCancels,
          fill: (panel) => fillCancel(c, li, panel),
        })
      : null;
  if (cancel !== null) actions.append(cancel[0]);

  // Doctors and head doctors read the consultation's questionnaires (the doctor may ask for one).
  const documents = role === 'doctor' || role === 'head_doctor' ? questionnairePanel(c, titleId) : [];
  actions.append(...documents.slice(0, 1));
  const panel = documents[1] ?? null;
  // What was written and sent in the call, kept with the consultation.
  const chat = hasChat(c, role) ? chatPanel(c, titleId) : null;
  if (chat !== null) actions.append(chat[0]);
  // The clinic: this consultation's recordings, where the call may have taken place.
  const recs =
    (role === 'admin' || role === 'head_doctor') && mayHaveCalled(c)
      ? disclosure({
          key: c.id,
          text: 'Записи',
          testid: 'show-recordings',
          panelTestid: 'recordings-panel',
          panelClass: 'c-documents',
          describedBy: titleId,
          open: openRecordings,
          fill: (p) => void fillRecordings(c, p),
        })
      : null;
  if (recs !== null) actions.append(recs[0]);
  if (role === 'admin') {
    const log = h('button', {
      class: 'button secondary',
      testid: 'show-notices',
      text: 'Уведомления',
      attrs: { type: 'button', 'aria-describedby': titleId },
    });
    log.addEventListener('click', () => showConsultationLog(c.id));
    const audit = h('button', {
      class: 'button secondary',
      testid: 'show-audit',
      text: 'Журнал',
      attrs: { type: 'button', 'aria-describedby': titleId },
    });
    audit.addEventListener('click', () => showAuditOf(c.id));
    actions.append(log, audit);
  }

  if (role === 'doctor' && open) {
    const areaId = `c-${c.id}-conclusion`;
    const area = h('textarea', {
      testid: 'conclusion',
      attrs: { id: areaId, rows: '4', maxlength: '20000', required: '' },
    });
    area.value = drafts.get(c.id) ?? '';
    area.addEventListener('input', () => drafts.set(c.id, area.value));
    const submit = h('button', {
      class: 'button primary',
      testid: 'complete-consultation',
      text: 'Завершить',
      attrs: { type: 'submit', 'aria-describedby': titleId },
    });
    const form = h(
      'form',
      { class: 'complete-form', testid: 'complete-form', attrs: { novalidate: '' } },
      h('label', { class: 'field-label', text: 'Заключение', attrs: { for: areaId } }),
      area,
      h('p', { class: 'hint', text: 'Пациент увидит заключение в своём списке консультаций.' }),
      h('div', { class: 'actions' }, submit),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void completeConsultation(c, li, area);
    });
    // Open for a call under way (or a draft); for one not started yet (a no-show to close),
    // one click away, so a day of upcoming consultations is not a wall of text boxes.
    const details = h(
      'details',
      { class: 'complete', testid: 'complete' },
      h('summary', { text: 'Заключение и завершение' }),
      form,
    );
    details.open = c.status === 'in_progress' || area.value !== '';
    li.append(actions);
    if (panel !== null) li.append(panel);
    if (chat !== null) li.append(chat[1]);
    li.append(error, details);
    return;
  }
  if (actions.childElementCount > 0) li.append(actions);
  if (move !== null) li.append(move[1]);
  if (refund !== null) li.append(refund[1]);
  if (cancel !== null) li.append(cancel[1]);
  if (panel !== null) li.append(panel);
  if (chat !== null) li.append(chat[1]);
  if (recs !== null) li.append(recs[1]);
  if (payForm !== null) li.append(payForm);
  li.append(error);
}

/** Run a row's action with the row disabled; a failure is shown in the row. */
async function rowAction(c: Consultation, li: HTMLLIElement, run: () => Promise<void>): Promise<void> {
  if (busy.has(c.id)) return;
  const gen = generation;
  busy.add(c.id);
  setRowBusy(li, true);
  say(rowError(li), null);
  try {
    await run();
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('a consultation action', e);
    // The current row (it may have been rebuilt meanwhile) shows why.
    const current = rows.get(c.id) ?? li;
    say(rowError(current), actionErrorText(c, e));
    // A 409 usually means the consultation moved on (paid, cancelled, started elsewhere).
    if (e instanceof ApiProblem && e.status === 409 && e.code !== 'outside_join_window') void refreshList();
  } finally {
    if (gen === generation) {
      busy.delete(c.id);
      setRowBusy(rows.get(c.id) ?? li, false);
    }
  }
}

function actionErrorText(c: Consultation, e: unknown): string {
  if (e instanceof ApiProblem && e.code === 'outside_join_window' && Date.now() > Date.parse(c.endsAt)) {
    return 'Время консультации прошло, звонок закрыт.';
  }
  return errorText(e);
}

async function joinCall(c: Consultation, li: HTMLLIElement): Promise<void> {
  await rowAction(c, li, async () => {
    setListStatus(TEXT.joining);
    try {
      const { callUrl } = await api.join(c.id);
      window.location.assign(callUrl);
    } catch (e) {
      setListStatus(null);
      throw e;
    }
  });
}

/** What a cancellation now does to the money of a paid consultation, by the clinic's rule. */
function refundRule(c: Consultation): string {
  if (user?.role !== 'patient') return 'Отмена клиникой: деньги, оплаченные через Vizit, вернутся пациенту полностью.';
  if (c.refundableUntil === null) return 'Деньги вернутся по правилам клиники.';
  return Date.now() <= Date.parse(c.refundableUntil)
    ? `Деньги вернутся полностью: до ${moment(c.refundableUntil, viewerZone())} отмена бесплатна. Как идёт возврат, будет видно здесь же.`
    : 'До начала осталось меньше, чем требуют правила клиники: при отмене сейчас деньги не вернутся.';
}

/** The cancellation's form: a reason (required), what happens to the money, and the button. */
function fillCancel(c: Consultation, li: HTMLLIElement, panel: HTMLElement): void {
  const areaId = `c-${c.id}-cancel-reason`;
  const area = h('textarea', { testid: 'cancel-reason', attrs: { id: areaId, rows: '2', maxlength: '500', required: '' } });
  const money = c.status === 'paid' ? refundRule(c) : 'Консультация не оплачена: платить ничего не нужно.';
  const submit = h('button', { class: 'button danger', testid: 'cancel-confirm', text: 'Отменить консультацию', attrs: { type: 'submit' } });
  const form = h(
    'form',
    { attrs: { novalidate: '' } },
    h('label', { class: 'field-label', text: 'Причина отмены', attrs: { for: areaId } }),
    area,
    h('p', { class: 'hint', text: money }),
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void cancelConsultation(c, li, area);
  });
  panel.replaceChildren(form);
  area.focus();
}

async function cancelConsultation(c: Consultation, li: HTMLLIElement, area: HTMLTextAreaElement): Promise<void> {
  const reason = area.value.trim();
  if (reason === '') {
    say(rowError(li), TEXT.cancelReasonRequired);
    area.focus();
    return;
  }
  await rowAction(c, li, async () => {
    const updated = await api.cancel(c.id, reason);
    openCancels.delete(c.id);
    consultations.set(updated.id, updated);
    renderList();
    setListStatus(TEXT.cancelled);
    void refreshList();
    if (user?.role === 'patient' && picking.doctorId !== '') void loadSlots(picking.doctorId);
  });
}

async function completeConsultation(c: Consultation, li: HTMLLIElement, area: HTMLTextAreaElement): Promise<void> {
  const conclusion = area.value.trim();
  if (conclusion === '') {
    say(rowError(li), TEXT.conclusionRequired);
    area.focus();
    return;
  }
  await rowAction(c, li, async () => {
    const updated = await api.complete(c.id, conclusion);
    drafts.delete(c.id);
    consultations.set(updated.id, updated);
    renderList();
    setListStatus(TEXT.completed);
    void refreshList();
  });
}

// ---- payment (patients) --------------------------------------------------------------------

/** The e-mail for the receipt, asked for only when the clinic has none on file. */
function payContactForm(c: Consultation, li: HTMLLIElement, titleId: string): HTMLFormElement {
  const inputId = `c-${c.id}-pay-email`;
  const hintId = `${inputId}-hint`;
  const input = h('input', {
    testid: 'pay-email',
    attrs: {
      id: inputId,
      type: 'email',
      name: 'email',
      autocomplete: 'email',
      inputmode: 'email',
      autocapitalize: 'off',
      spellcheck: 'false',
      required: '',
      maxlength: '254',
      'aria-describedby': hintId,
    },
  });
  const form = h(
    'form',
    { class: 'pay-form', testid: 'pay-form', attrs: { novalidate: '' } },
    h('label', { class: 'field-label', text: 'E-mail для чека', attrs: { for: inputId } }),
    input,
    h('p', { class: 'hint', text: TEXT.payEmailHint, attrs: { id: hintId } }),
    h(
      'div',
      { class: 'actions' },
      h('button', {
        class: 'button primary',
        testid: 'pay-submit',
        text: 'Перейти к оплате',
        attrs: { type: 'submit', 'aria-describedby': titleId },
      }),
    ),
  );
  form.hidden = true;
  input.addEventListener('input', () => {
    if (input.getAttribute('aria-invalid') === 'true') {
      input.removeAttribute('aria-invalid');
      say(rowError(li), null);
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const email = input.value.trim();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
      say(rowError(li), TEXT.payEmailInvalid);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    void payConsultation(c, li, form, email);
  });
  return form;
}

/** To the payment page of `c` (YooKassa's), asking for an e-mail first if the receipt needs one. */
async function payConsultation(c: Consultation, li: HTMLLIElement, form: HTMLFormElement, email?: string): Promise<void> {
  let askContact = false;
  let note: string | null = null;
  await rowAction(c, li, async () => {
    setListStatus(TEXT.paying);
    let p: Payment;
    try {
      p = await api.checkout(c.id, email);
    } catch (e) {
      setListStatus(null);
      if (e instanceof ApiProblem && e.code === 'contact_required') {
        askContact = true;
        return;
      }
      throw e;
    }
    if (goToPayment(p)) return;
    setListStatus(null);
    if (p.status === 'succeeded' || p.status === 'waiting_for_capture') {
      note = TEXT.payChecking;
      void refreshList();
    } else {
      // creating: YooKassa is slow or down; the payment reaches it later.
      note = TEXT.payCreating;
    }
  });
  const current = rows.get(c.id) ?? li;
  if (askContact) {
    const shown = current.querySelector<HTMLFormElement>('[data-testid="pay-form"]') ?? form;
    shown.hidden = false;
    say(rowError(current), null);
    shown.querySelector<HTMLInputElement>('input')?.focus();
  } else if (note !== null) {
    say(rowError(current), note);
  }
}

/** A cancelled paid consultation: is the money back? */
async function loadRefund(c: Consultation, el: HTMLElement): Promise<void> {
  const gen = generation;
  try {
    const payments = await api.payments(c.id);
    if (gen !== generation) return;
    const paid = payments.find((p) => p.status === 'succeeded');
    let text: string = TEXT.refundNone;
    if (paid !== undefined && paid.refunds.length > 0) {
      const done = paid.refundedKopecks;
      const going = refundsGoing(paid);
      text =
        going.length > 0
          ? `${TEXT.refundPending}: ${price(going.reduce((sum, r) => sum + r.amountKopecks, 0))}.`
          : done > 0
            ? `${TEXT.refundDone}: ${price(done)}.`
            : TEXT.refundFailed;
      if (going.length > 0) {
        notSettled(c, el, text);
        return;
      }
    } else if (paid !== undefined && recentlyCancelled(c)) {
      // The clinic's rules may refund: the refund is created just after the cancellation.
      notSettled(c, el, TEXT.refundChecking);
      return;
    } else if (paid === undefined) {
      // Paid outside Vizit (the clinic marked it): nothing to say about money here.
      text = '';
    }
    refundTexts.set(c.id, text);
    el.textContent = text;
    el.hidden = text === '';
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the refund', e);
    el.hidden = true;
  }
}

/** How long after a cancellation a refund may still be on its way into being. */
const REFUND_GRACE_MS = 2 * 60_000;

function recentlyCancelled(c: Consultation): boolean {
  if (c.cancelledAt === null) return false;
  return Date.now() - Date.parse(c.cancelledAt) < REFUND_GRACE_MS;
}

/** Show a refund state that may still change (not cached), and ask about that refund again
 * shortly, for as long as its line is on the page. */
function notSettled(c: Consultation, el: HTMLElement, text: string): void {
  el.textContent = text;
  el.hidden = false;
  const gen = generation;
  window.setTimeout(() => {
    if (gen === generation && el.isConnected) void loadRefund(c, el);
  }, REFUND_POLL_MS);
}

// ---- back from the payment page --------------------------------------------------------------

function setPayState(state: 'checking' | 'paid' | 'declined' | 'closed' | 'error', text: string): void {
  // Written only on a change, so a screen reader is not told the same thing at every poll.
  if (ui.payResultState.dataset['state'] !== state) ui.payResultState.dataset['state'] = state;
  if (ui.payResultState.textContent !== text) ui.payResultState.textContent = text;
}

function stopPaymentResult(): void {
  if (payTimer !== null) window.clearTimeout(payTimer);
  payTimer = null;
  ui.payAgain.hidden = true;
}

/** Show what the server says of the payment the patient comes back from, until it is settled. */
function startPaymentResult(focus: boolean): void {
  const id = returnConsultation;
  if (id === null) return;
  stopPaymentResult();
  ui.payResult.hidden = false;
  document.title = 'Оплата консультации — Vizit';
  setPayState('checking', TEXT.payChecking);
  if (focus || document.activeElement === document.body) focusHeading(ui.payResultTitle);
  const gen = generation;
  const started = Date.now();
  const check = async (): Promise<void> => {
    payTimer = null;
    if (gen !== generation) return;
    try {
      const c = await api.consultation(id);
      if (gen !== generation) return;
      if (c.status === 'paid' || c.status === 'in_progress' || c.status === 'completed') {
        setPayState('paid', TEXT.payPaid);
        void refreshList();
        return;
      }
      if (c.status === 'cancelled' || c.status === 'expired') {
        setPayState('closed', TEXT.payClosed);
        return;
      }
      // Still booked: how did the last attempt go?
      const payments = await api.payments(id);
      if (gen !== generation) return;
      const last = payments.length > 0 ? payments[payments.length - 1] : undefined;
      if (last !== undefined && (last.status === 'canceled' || last.status === 'failed')) {
        setPayState('declined', `Оплата не прошла: ${declineText(last.cancelReason)}. Можно попробовать ещё раз.`);
        ui.payAgain.hidden = false;
        return;
      }
      setPayState('checking', Date.now() - started > PAY_PATIENCE_MS ? TEXT.payStillPending : TEXT.payChecking);
    } catch (e) {
      if (gen !== generation || isUnauthorized(e)) return;
      logFailure('checking the payment', e);
      if (e instanceof ApiProblem && e.status === 404) {
        setPayState('error', TEXT.payNotFound);
        return;
      }
      setPayState('error', `Не удалось проверить оплату. ${errorText(e)}`);
    }
    payTimer = window.setTimeout(() => void check(), Date.now() - started > PAY_PATIENCE_MS ? PAY_POLL_SLOW_MS : PAY_POLL_MS);
  };
  void check();
}

/** A payment waiting on YooKassa's page: go there. False if it is not (yet) such. */
function goToPayment(p: Payment): boolean {
  if (p.status !== 'pending' || p.confirmationUrl === null) return false;
  window.location.assign(p.confirmationUrl);
  return true;
}

async function payAgain(): Promise<void> {
  const id = returnConsultation;
  if (id === null) return;
  ui.payAgain.disabled = true;
  try {
    const p = await api.checkout(id);
    if (goToPayment(p)) return;
    // Created but not yet answered by YooKassa: watch it as on the way back from paying.
    startPaymentResult(false);
    if (p.status === 'creating') setPayState('checking', TEXT.payCreating);
  } catch (e) {
    if (isUnauthorized(e)) return;
    logFailure('paying again', e);
    setPayState('error', errorText(e));
  } finally {
    ui.payAgain.disabled = false;
  }
}

// ---- overdue (admin, head doctor) ----------------------------------------------------------

async function loadOverdue(): Promise<void> {
  const gen = generation;
  try {
    const page = await api.overdue(200);
    if (gen !== generation) return;
    ui.overdueList.replaceChildren(...page.items.map((c) => renderConsultation(c, 'overdue')));
    say(
      ui.overdueEmpty,
      page.items.length === 0
        ? TEXT.noOverdue
        : page.total > page.items.length
          ? `Показаны ${page.items.length} из ${page.total}.`
          : null,
    );
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the overdue consultations', e);
    say(ui.overdueEmpty, `Не удалось загрузить просроченные. ${errorText(e)}`);
  }
}

// ---- recordings (admin, head doctor) --------------------------------------------------------

/** Recordings still on their way to the store are looked at again this soon. */
const RECORDINGS_BUSY_POLL_MS = 5_000;
let recordingsTimer: number | undefined;

async function loadRecordings(): Promise<void> {
  const gen = generation;
  window.clearTimeout(recordingsTimer);
  try {
    const page = await api.recordings(100);
    if (gen !== generation) return;
    ui.recordingsList.replaceChildren(...page.items.map(renderRecording));
    // A recording being made, composed or uploaded changes by itself: follow it closely.
    if (page.items.some((r) => r.status === 'recording' || r.status === 'processing' || r.status === 'uploading')) {
      recordingsTimer = window.setTimeout(() => {
        if (document.visibilityState === 'visible') void loadRecordings();
      }, RECORDINGS_BUSY_POLL_MS);
    }
    say(
      ui.recordingsEmpty,
      page.items.length === 0
        ? TEXT.noRecordings
        : page.total > page.items.length
          ? `Показаны ${page.items.length} из ${page.total}.`
          : null,
    );
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the recordings', e);
    say(ui.recordingsEmpty, `Не удалось загрузить записи. ${errorText(e)}`);
  }
}

/** Whether `c`'s call may have taken place (and so been recorded). */
function mayHaveCalled(c: Consultation): boolean {
  if (c.status === 'in_progress' || c.status === 'completed') return true;
  const opened = c.joinOpensAt !== null && Date.now() >= Date.parse(c.joinOpensAt);
  return (c.status === 'paid' || c.status === 'cancelled') && opened;
}

/** One consultation's recordings, in its row. */
async function fillRecordings(c: Consultation, panel: HTMLElement): Promise<void> {
  const gen = generation;
  panel.setAttribute('aria-busy', 'true');
  try {
    const page = await api.recordings(50, c.id);
    if (gen !== generation) return;
    panel.replaceChildren(
      page.items.length === 0
        ? h('p', { class: 'hint', testid: 'recordings-none', text: TEXT.noRecordingsOfOne })
        : h('ul', { class: 'consultations', attrs: { 'aria-label': 'Записи консультации' } }, ...page.items.map(renderRecording)),
    );
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the recordings of a consultation', e);
    panel.replaceChildren(h('p', { class: 'form-error', text: `Не удалось загрузить записи. ${errorText(e)}`, attrs: { role: 'alert' } }));
  } finally {
    panel.removeAttribute('aria-busy');
  }
}

function renderRecording(r: Recording): HTMLLIElement {
  const who =
    r.kind === 'composite' ? 'Общая запись' : r.participantRole === 'doctor' ? 'Врач' : 'Пациент';
  const when = new Date(r.consultationStartsAt).toLocaleString('ru-RU', {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
  const download = h('button', {
    class: 'button secondary small',
    testid: 'recording-download',
    text: 'Скачать',
    attrs: { type: 'button', 'aria-label': `Скачать запись: ${who}, ${when}` },
  });
  download.disabled = r.status !== 'stored';
  const note = h('span', { class: 'c-meta' });
  download.addEventListener('click', () => {
    download.disabled = true;
    say(note, 'Готовим ссылку…');
    api
      .downloadLink(r.id)
      .then((link) => {
        say(note, null);
        window.location.assign(link.url);
      })
      .catch((e: unknown) => {
        logFailure('getting a download link', e);
        say(note, errorText(e));
      })
      .finally(() => {
        download.disabled = r.status !== 'stored';
      });
  });
  return h(
    'li',
    { class: 'consultation', testid: 'recording', attrs: { 'data-recording-id': r.id, 'data-consultation-id': r.consultationId } },
    h('div', {
      class: 'c-when',
      // A patient's own: the doctor is enough.
      text: `${when} · ${r.patientName === '' || user?.role === 'patient' ? '' : `${r.patientName} у врача `}${r.doctorName}`,
    }),
    h(
      'div',
      { class: 'c-meta' },
      h('span', { text: who }),
      h('span', { text: ` · ${duration(r.durationMs)} · ${size(r.sizeBytes)} · ` }),
      h('span', { testid: 'recording-status', text: RECORDING_STATUS_TEXT[r.status] ?? r.status }),
    ),
    h('div', { class: 'actions' }, download, note),
  );
}

// ---- booking (patients) --------------------------------------------------------------------

let doctors: Doctor[] = [];
let slotsRequest = 0;

async function loadDoctors(): Promise<void> {
  const gen = generation;
  say(ui.bookingError, null);
  ui.bookingStatus.textContent = TEXT.loading;
  try {
    const list = await api.doctors();
    if (gen !== generation) return;
    doctors = list;
    if (!doctors.some((d) => d.id === picking.doctorId)) picking.doctorId = '';
    renderDoctors();
    ui.bookingStatus.textContent = doctors.length === 0 ? TEXT.noDoctors : TEXT.chooseDoctor;
    if (picking.doctorId !== '') await loadSlots(picking.doctorId);
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('loading the doctors', e);
    ui.bookingStatus.textContent = '';
    say(ui.bookingError, `Не удалось загрузить список врачей. ${errorText(e)}`);
  }
}

/** The doctors as cards: a picture (initials until the clinic has photos), name, specialty, price. */
function renderDoctors(): void {
  ui.doctors.replaceChildren(
    ...doctors.map((d) => {
      const card = h(
        'button',
        {
          class: 'doctor-card',
          testid: 'doctor',
          attrs: { type: 'button', 'data-doctor-id': d.id, 'aria-pressed': String(d.id === picking.doctorId) },
        },
        h('span', { class: 'avatar', text: initials(d.name), attrs: { 'aria-hidden': 'true' } }),
        h(
          'span',
          { class: 'doctor-text' },
          h('span', { class: 'doctor-name', text: d.name }),
          h('span', { class: 'doctor-spec', text: d.specialty }),
          ...(d.priceKopecks === null ? [] : [h('span', { class: 'doctor-price', text: price(d.priceKopecks) })]),
        ),
      );
      card.addEventListener('click', () => {
        say(ui.bookingError, null);
        ui.bookingPay.hidden = true;
        for (const b of ui.doctors.querySelectorAll<HTMLButtonElement>('[data-testid="doctor"]')) {
          b.setAttribute('aria-pressed', String(b === card));
        }
        // Another doctor: the times on screen are no longer theirs (not even for a moment).
        if (picking.doctorId !== d.id) {
          picking.doctorId = d.id;
          picking.slots = [];
          picking.day = null;
          renderPicking();
        }
        void loadSlots(d.id);
      });
      return h('li', {}, card);
    }),
  );
}

/** «Иванова Анна Петровна» → «ИА». */
function initials(name: string): string {
  return name
    .split(/\s+/)
    .filter((w) => w !== '')
    .slice(0, 2)
    .map((w) => w[0]?.toUpperCase() ?? '')
    .join('');
}

/** What the booking shows: the doctor's free slots, the day picked, the slot to confirm. */
const picking: Picking & { doctorId: string } = { doctorId: '', slots: [], day: null, chosen: null };

/** Show `doctorId`'s free slots by day; `note` replaces the usual status line afterwards. */
async function loadSlots(doctorId: string, note?: string): Promise<void> {
  const gen = generation;
  const request = ++slotsRequest;
  picking.chosen = null;
  ui.bookingConfirm.hidden = true;
  if (doctorId === '') {
    picking.doctorId = '';
    picking.slots = [];
    renderPicking();
    ui.bookingStatus.textContent = note ?? TEXT.chooseDoctor;
    return;
  }
  ui.slots.setAttribute('aria-busy', 'true');
  if (note === undefined) ui.bookingStatus.textContent = TEXT.loading;
  try {
    const slots = await api.slots(doctorId);
    if (gen !== generation || request !== slotsRequest) return;
    picking.doctorId = doctorId;
    picking.slots = slots;
    renderPicking();
    ui.bookingStatus.textContent = note ?? (slots.length === 0 ? TEXT.noSlots : TEXT.chooseDay);
  } catch (e) {
    if (gen !== generation || request !== slotsRequest || isUnauthorized(e)) return;
    logFailure('loading the slots', e);
    picking.slots = [];
    renderPicking();
    ui.bookingStatus.textContent = '';
    say(ui.bookingError, `Не удалось загрузить свободное время. ${errorText(e)}`);
  } finally {
    if (request === slotsRequest) ui.slots.removeAttribute('aria-busy');
  }
}

/** The day strip and the chosen day's times, in the viewer's zone. */
function renderPicking(): void {
  renderPicker({ days: ui.days, slots: ui.slots, zoneNote: ui.zoneNote }, picking, {
    verb: 'записаться',
    onDay: () => {
      ui.bookingConfirm.hidden = true;
    },
    onChoose: chooseSlot,
  });
}

/** «Иванова Анна Петровна, терапевт»: the booking's doctor line. */
function doctorLine(d: { name: string; specialty: string }): string {
  return `${d.name}, ${d.specialty.toLowerCase()}`;
}

/** A booking's time at the patient's clock, and at the doctor's too if it differs. */
function bothClocks(startsAt: string, endsAt: string, timeZone: string): string {
  const { when, zone } = slotTime(startsAt, endsAt, timeZone);
  return zone === '' ? when : `${when} (ваше время; ${zone})`;
}

/** The confirmation step: whom, when (the patient's clock; the doctor's too if it differs), the price and the rules. */
function chooseSlot(s: Slot): void {
  const doctor = doctors.find((d) => d.id === s.doctorId);
  ui.confirmDoctor.textContent = doctor === undefined ? '' : doctorLine(doctor);
  ui.confirmWhen.textContent = bothClocks(s.startsAt, s.endsAt, s.timeZone);
  ui.confirmPrice.textContent = price(s.priceKopecks);
  ui.bookingConfirm.hidden = false;
  ui.bookingConfirm.scrollIntoView({ block: 'nearest' });
  ui.bookConfirm.focus();
}

let booking = false;

async function book(s: Slot, doctorId: string): Promise<void> {
  if (booking) return;
  const gen = generation;
  booking = true;
  const buttons = [...ui.slots.querySelectorAll<HTMLButtonElement>('[data-testid="book-slot"]'), ui.bookConfirm, ui.bookBack];
  for (const b of buttons) b.disabled = true;
  say(ui.bookingError, null);
  try {
    const c = await api.book(s.id);
    if (gen !== generation) return;
    consultations.set(c.id, c);
    total = Math.max(total, consultations.size);
    renderList();
    void refreshList();
    await loadSlots(doctorId, TEXT.booked);
    if (gen === generation) showPayStep(c);
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('booking', e);
    say(ui.bookingError, errorText(e));
    if (e instanceof ApiProblem && (e.code === 'slot_taken' || e.code === 'slot_in_past' || e.code === 'not_found')) {
      await loadSlots(doctorId, '');
    } else {
      for (const b of buttons) b.disabled = false;
    }
  } finally {
    booking = false;
    ui.bookConfirm.disabled = false;
    ui.bookBack.disabled = false;
  }
}

/** The step after booking: what was booked, by when to pay, and «Оплатить». */
function showPayStep(c: Consultation): void {
  if (c.status !== 'booked') return;
  ui.bookingPay.dataset['consultationId'] = c.id;
  ui.paystepDoctor.textContent = doctorLine(c.doctor);
  ui.paystepWhen.textContent = bothClocks(c.startsAt, c.endsAt, c.timeZone);
  ui.paystepBy.textContent = moment(c.payBy, viewerZone());
  ui.paystepPay.textContent = `Оплатить ${price(c.priceKopecks)}`;
  say(ui.paystepError, null);
  ui.bookingPay.hidden = false;
  ui.bookingPay.scrollIntoView({ block: 'nearest' });
  ui.paystepPay.focus();
}

/** «Оплатить» of the step: the row's payment (which asks for an e-mail there if the receipt needs one). */
async function payFromStep(): Promise<void> {
  const id = ui.bookingPay.dataset['consultationId'] ?? '';
  const c = consultations.get(id);
  const row = rows.get(id);
  const form = row?.querySelector<HTMLFormElement>('[data-testid="pay-form"]');
  if (c === undefined || row === undefined || form === undefined || form === null || c.status !== 'booked') {
    ui.bookingPay.hidden = true;
    return;
  }
  ui.paystepPay.disabled = true;
  try {
    await payConsultation(c, row, form);
  } finally {
    ui.paystepPay.disabled = false;
  }
  // Still here: the receipt needs an e-mail (asked in the row) or the payment is on its way.
  const current = rows.get(id) ?? row;
  const asked = current.querySelector<HTMLFormElement>('[data-testid="pay-form"]');
  if (asked !== null && !asked.hidden) {
    ui.bookingPay.hidden = true;
    current.scrollIntoView({ block: 'center' });
    asked.querySelector<HTMLInputElement>('input')?.focus();
  }
}

// ---- refreshing ----------------------------------------------------------------------------

function refreshAll(): void {
  if (user === null) return;
  void refreshList();
  if (user.role === 'admin' || user.role === 'head_doctor') {
    void loadOverdue();
    void loadRecordings();
    refreshAdmin(user.role);
  }

  refreshDocuments(user.role);
  refreshNotices(user.role);
}

function startPolling(): void {
  stopPolling();
  pollTimer = window.setInterval(() => {
    if (document.visibilityState === 'visible' && busy.size === 0 && !booking) refreshAll();
  }, POLL_MS);
}

function stopPolling(): void {
  if (pollTimer !== null) window.clearInterval(pollTimer);
  pollTimer = null;
}

// ---- signing in and out --------------------------------------------------------------------

/** Page load (or a new session handed over): who is logged in, if anyone? */
async function resume(): Promise<void> {
  if (loadToken() === null) {
    // A browser back from Gosuslugi holds its session as a cookie.
    generation += 1;
    const gen = generation;
    showView('loading');
    probing = true;
    try {
      const me = await api.me();
      if (gen !== generation) return;
      if (me !== null) {
        signIn(me, false);
        return;
      }
    } catch (e) {
      if (gen !== generation) return;
      if (!isUnauthorized(e)) logFailure('checking the session cookie', e);
    } finally {
      probing = false;
    }
    signOut(returnConsultation === null ? null : TEXT.payLoginFirst, false);
    return;
  }
  generation += 1;
  const gen = generation;
  showView('loading');
  ui.retry.hidden = true;
  say(ui.pageMessage, null);
  try {
    const me = await api.me();
    if (gen !== generation) return;
    if (me === null) {
      signOut(TEXT.unsupportedAccount, false);
      return;
    }
    signIn(me, false);
  } catch (e) {
    if (gen !== generation || isUnauthorized(e)) return;
    logFailure('checking the session', e);
    // Keep the session: the server may be restarting or the network down for a moment.
    say(ui.pageMessage, errorText(e));
    ui.retry.hidden = false;
  }
}

async function login(): Promise<void> {
  const email = ui.loginEmail.value.trim();
  const password = ui.loginPassword.value;
  if (email === '' || password === '') {
    say(ui.loginError, TEXT.emptyCredentials);
    (email === '' ? ui.loginEmail : ui.loginPassword).focus();
    return;
  }
  ui.loginSubmit.disabled = true;
  ui.loginForm.setAttribute('aria-busy', 'true');
  say(ui.loginError, null);
  say(ui.pageMessage, null);
  try {
    const session = await api.login(email, password);
    saveToken(session.token);
    ui.loginPassword.value = '';
    signIn(session.user);
  } catch (e) {
    logFailure('login', e);
    say(ui.loginError, errorText(e));
    ui.loginPassword.focus();
  } finally {
    ui.loginSubmit.disabled = false;
    ui.loginForm.removeAttribute('aria-busy');
  }
}

async function demoLogin(): Promise<void> {
  ui.demoLogin.disabled = true;
  say(ui.demoError, null);
  say(ui.pageMessage, null);
  try {
    const session = await api.devLogin(DEMO_PATIENT_NAME);
    saveToken(session.token);
    signIn(session.user);
  } catch (e) {
    logFailure('demo login', e);
    if (e instanceof ApiProblem && e.status === 404) {
      // No demo mode on this server: the button has nothing to offer.
      ui.demoLogin.hidden = true;
      say(ui.demoError, 'Демо-вход на этом сервере выключен.');
      return;
    }
    say(ui.demoError, errorText(e));
  } finally {
    ui.demoLogin.disabled = false;
  }
}

async function logout(): Promise<void> {
  ui.logout.disabled = true;
  loggingOut = true;
  const viaEsia = user?.via === 'esia';
  try {
    await api.logout();
  } catch (e) {
    // Expired already, or the server is unreachable: forget the session here all the same —
    // unless it is a cookie the page cannot forget, which would sign the person in again.
    logFailure('logout', e);
    if (viaEsia && !isUnauthorized(e)) {
      loggingOut = false;
      ui.logout.disabled = false;
      say(ui.pageMessage, `${TEXT.logoutFailed} ${errorText(e)}`);
      return;
    }
  } finally {
    loggingOut = false;
    ui.logout.disabled = false;
  }
  signOut(TEXT.loggedOut);
  // Signed in through Gosuslugi: end that session too (the server knows whether the clinic wants it).
  if (viaEsia) window.location.assign('/login/esia/logout');
}

// ---- wiring --------------------------------------------------------------------------------

initDocuments({ api, generation: () => generation, logFailure });
initChat({ api, generation: () => generation, logFailure });
initNotices({ api, generation: () => generation, logFailure });
initIdentity({ api, generation: () => generation, logFailure });
initAdmin({
  api,
  generation: () => generation,
  logFailure,
  updated: (c, message) => {
    consultations.set(c.id, c);
    renderList();
    setListStatus(message);
    // The list with it (refreshAll reads it again), and what the change moved elsewhere.
    refreshAll();
  },
  conflictRow: (c) => renderConsultation(c, 'conflict'),
});
ui.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void login();
});
ui.demoLogin.addEventListener('click', () => void demoLogin());
ui.logout.addEventListener('click', () => void logout());
ui.retry.addEventListener('click', () => void resume());
ui.payAgain.addEventListener('click', () => void payAgain());
ui.refresh.addEventListener('click', () => {
  refreshAll();
  // A patient's recordings change rarely (after a call): on demand, not at every poll (each
  // reading is audited).
  if (user?.role === 'patient' && patientRecordings) void loadRecordings();
  if (user?.role === 'patient') void loadSlots(picking.doctorId);
});
ui.more.addEventListener('click', () => {
  pages += 1;
  void refreshList();
});
ui.paystepPay.addEventListener('click', () => void payFromStep());
ui.paystepLater.addEventListener('click', () => {
  ui.bookingPay.hidden = true;
  const id = ui.bookingPay.dataset['consultationId'];
  rows.get(id ?? '')?.querySelector<HTMLButtonElement>('[data-testid="pay-consultation"]')?.focus();
});
// The clinic's search: as typed (a short pause first), and by status.
let searchTimer: ReturnType<typeof setTimeout> | undefined;
ui.search.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => void refreshList(), 300);
});
ui.statusFilter.addEventListener('change', () => void refreshList());
ui.dayFilter.addEventListener('change', () => void refreshList());
ui.filters.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(searchTimer);
  void refreshList();
});
ui.bookConfirm.addEventListener('click', () => {
  if (picking.chosen !== null) void book(picking.chosen, picking.chosen.doctorId);
});
ui.bookBack.addEventListener('click', () => {
  picking.chosen = null;
  ui.bookingConfirm.hidden = true;
  renderPicking();
  ui.slots.querySelector<HTMLButtonElement>('[data-testid="book-slot"]')?.focus();
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refreshAll();
});
// The portal may hand a new session over to a tab that already shows the page.
window.addEventListener('hashchange', () => {
  if (takeTokenFromFragment()) void resume();
});

takeTokenFromFragment();
void resume();
