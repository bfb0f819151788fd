/**
 * The clinic admin's tools on the consultations page: moving a consultation to another time
 * («Перенести»; patients have it too), refunding a payment («Вернуть деньги»), the list of
 * consultations whose time changed in Bitrix24, and the audit log with its filters.
 */

import {
  ApiProblem,
  type ApiClient,
  type AuditEntry,
  type AuditFilter,
  type Consultation,
  type Payment,
  type Role,
  type Slot,
} from './api';
import { byTestId, confirmAction, disclosure, h, say } from './dom';
import { type Picking, renderPicker } from './picker';
import { ROLE_TEXT, dayRange, errorText, price, slotTime } from './texts';

/** What the page gives this module. */
export interface AdminHost {
  api: ApiClient;
  generation(): number;
  logFailure(what: string, e: unknown): void;
  /** A consultation changed here: put it in the list and say `message`. */
  updated(c: Consultation, message: string): void;
  /** A row of the slot-conflict list (no actions: those are in the main list). */
  conflictRow(c: Consultation): HTMLLIElement;
}

let host: AdminHost | null = null;
const openReschedules = new Set<string>();
const openRefunds = new Set<string>();

const ui = {
  conflictsSection: byTestId('conflicts-section', HTMLElement),
  conflicts: byTestId('conflicts', HTMLUListElement),
  conflictsEmpty: byTestId('conflicts-empty', HTMLParagraphElement),
  auditSection: byTestId('audit-section', HTMLElement),
  auditTitle: byTestId('audit-title', HTMLHeadingElement),
  auditForm: byTestId('audit-filters', HTMLFormElement),
  auditAction: byTestId('audit-action', HTMLSelectElement),
  auditObject: byTestId('audit-object', HTMLInputElement),
  auditActor: byTestId('audit-actor', HTMLInputElement),
  auditFrom: byTestId('audit-from', HTMLInputElement),
  auditTo: byTestId('audit-to', HTMLInputElement),
  auditReset: byTestId('audit-reset', HTMLButtonElement),
  auditStatus: byTestId('audit-status', HTMLParagraphElement),
  audit: byTestId('audit', HTMLUListElement),
  auditMore: byTestId('audit-more', HTMLButtonElement),
};

export function initAdmin(h0: AdminHost): void {
  host = h0;
  ui.auditForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void loadAudit(false);
  });
  ui.auditAction.addEventListener('change', () => void loadAudit(false));
  ui.auditReset.addEventListener('click', () => {
    ui.auditForm.reset();
    void loadAudit(false);
  });
  ui.auditMore.addEventListener('click', () => void loadAudit(true));
}

/** Show the clinic's sections for `role` (hidden for everyone else). */
export function showAdmin(role: Role | null): void {
  ui.conflictsSection.hidden = role !== 'admin' && role !== 'head_doctor';
  ui.auditSection.hidden = role !== 'admin';
}

export function resetAdmin(): void {
  openReschedules.clear();
  openRefunds.clear();
  auditItems = [];
  auditApplied = {};
  auditLoaded = false;
  ui.conflicts.replaceChildren();
  ui.audit.replaceChildren();
  ui.auditForm.reset();
  say(ui.conflictsEmpty, null);
  say(ui.auditStatus, null);
  ui.auditMore.hidden = true;
}

export function refreshAdmin(role: Role): void {
  if (role === 'admin' || role === 'head_doctor') void loadConflicts();
  if (role === 'admin' && !auditLoaded) void loadAudit(false);
}

// ---- moving a consultation -------------------------------------------------------------------

/** Who may move `c` here: its patient and the clinic's admins, before it starts. */
export function mayReschedule(c: Consultation, role: Role): boolean {
  return (role === 'patient' || role === 'admin') && (c.status === 'booked' || c.status === 'paid') && Date.parse(c.startsAt) > Date.now();
}

/** «Перенести» and its panel: the doctor's free days and times, then a confirmation. */
export function reschedulePanel(c: Consultation, titleId: string, role: Role): [HTMLButtonElement, HTMLElement] {
  return disclosure({
    key: c.id,
    text: 'Перенести',
    testid: 'reschedule',
    panelTestid: 'reschedule-panel',
    panelClass: 'c-documents reschedule',
    describedBy: titleId,
    open: openReschedules,
    fill: (panel) => void fillReschedule(c, panel, role),
  });
}

async function fillReschedule(c: Consultation, panel: HTMLElement, role: Role): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  const status = h('p', { class: 'notice-line', text: 'Загружаем свободное время…', attrs: { role: 'status' } });
  const days = h('div', { class: 'days', testid: 'days', attrs: { role: 'group', 'aria-label': 'День' } });
  const slots = h('ul', { class: 'slots', testid: 'slots', attrs: { 'aria-label': 'Свободное время врача' } });
  const zoneNote = h('p', { class: 'hint' });
  const confirmText = h('p', { class: 'c-meta', testid: 'reschedule-to' });
  const confirm = h('button', { class: 'button primary', testid: 'reschedule-confirm', text: 'Перенести', attrs: { type: 'button' } });
  const error = h('p', { class: 'form-error', testid: 'reschedule-error', attrs: { role: 'alert' } });
  const bar = h('div', { class: 'reschedule-confirm' }, confirmText, h('div', { class: 'actions' }, confirm));
  bar.hidden = true;
  error.hidden = true;
  zoneNote.hidden = true;
  panel.replaceChildren(status, days, zoneNote, slots, bar, error);
  const picking: Picking = { slots: [], day: null, chosen: null };
  const api = host.api;
  // The doctor's free times, less the one it is booked at.
  const freeSlots = async (): Promise<Slot[]> => (await api.slots(c.doctor.id)).filter((s) => s.id !== c.slotId);
  const draw = (): void =>
    renderPicker({ days, slots, zoneNote }, picking, {
      verb: 'перенести сюда',
      onDay: () => {
        bar.hidden = true;
      },
      onChoose: (s) => {
        const { when, zone } = slotTime(s.startsAt, s.endsAt, s.timeZone);
        const told = role === 'patient' ? 'Врач получит уведомление.' : 'Пациент и врач получат уведомление.';
        const paid = c.status === 'paid' ? ' Оплата сохраняется.' : '';
        confirmText.textContent = `Новое время: ${when}${zone === '' ? '' : ` (${zone})`}.${paid} ${told}`;
        bar.hidden = false;
        confirm.focus();
      },
    });
  try {
    picking.slots = await freeSlots();
    if (gen !== host.generation()) return;
    draw();
    say(status, picking.slots.length === 0 ? 'У врача нет свободного времени в ближайшие две недели.' : 'Выберите день и время.');
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the slots to move to', e);
    say(status, null);
    say(error, `Не удалось загрузить свободное время. ${errorText(e)}`);
    return;
  }
  confirm.addEventListener('click', () => {
    const to = picking.chosen;
    if (to === null || host === null) return;
    const current = (): boolean => host !== null && gen === host.generation();
    confirm.disabled = true;
    say(error, null);
    api
      .reschedule(c.id, to.id)
      .then((updated) => {
        if (!current()) return;
        openReschedules.delete(c.id);
        host?.updated(updated, 'Консультация перенесена.');
        // The row is drawn anew: the focus goes to its «Перенести».
        document
          .querySelector<HTMLButtonElement>(`[data-testid="consultation"][data-consultation-id="${c.id}"] [data-testid="reschedule"]`)
          ?.focus();
      })
      .catch((e: unknown) => {
        if (!current()) return;
        host?.logFailure('moving a consultation', e);
        say(error, errorText(e));
        // The time was taken meanwhile: offer what is free now.
        if (e instanceof ApiProblem && (e.code === 'slot_taken' || e.code === 'slot_in_past')) {
          void freeSlots()
            .then((fresh) => {
              if (!current()) return;
              picking.slots = fresh;
              picking.chosen = null;
              bar.hidden = true;
              draw();
            })
            .catch((e2: unknown) => host?.logFailure('loading the slots to move to', e2));
        }
      })
      .finally(() => {
        confirm.disabled = false;
      });
  });
}

// ---- refunds ---------------------------------------------------------------------------------

/** Whether an admin may refund `c` here: it was paid (the money may have come through Vizit). */
export function mayRefund(c: Consultation, role: Role): boolean {
  return role === 'admin' && c.paidAt !== null && c.status !== 'booked' && c.status !== 'expired';
}

/** «Вернуть деньги» and its panel: the payment, its refunds, and a form for a new one. */
export function refundPanel(c: Consultation, titleId: string): [HTMLButtonElement, HTMLElement] {
  return disclosure({
    key: c.id,
    text: 'Вернуть деньги',
    testid: 'refund',
    panelTestid: 'refund-panel',
    panelClass: 'c-documents refund',
    describedBy: titleId,
    open: openRefunds,
    fill: (panel) => void fillRefund(c, panel),
  });
}

const REFUND_STATUS_TEXT: Record<string, string> = {
  creating: 'создаётся',
  pending: 'в обработке',
  succeeded: 'деньги возвращены',
  canceled: 'отклонён',
  failed: 'не удался',
};

async function fillRefund(c: Consultation, panel: HTMLElement): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  panel.replaceChildren(h('p', { class: 'notice-line', text: 'Загружаем оплату…', attrs: { role: 'status' } }));
  let paid: Payment | undefined;
  try {
    paid = (await host.api.payments(c.id)).find((p) => p.status === 'succeeded');
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the payment to refund', e);
    panel.replaceChildren(h('p', { class: 'form-error', text: `Не удалось загрузить оплату. ${errorText(e)}`, attrs: { role: 'alert' } }));
    return;
  }
  if (gen !== host.generation()) return;
  if (paid === undefined) {
    panel.replaceChildren(
      h('p', {
        class: 'hint',
        testid: 'refund-none',
        text: 'Оплата прошла не через Vizit (отмечена в клинике): вернуть деньги здесь нельзя, верните их тем же способом, каким приняли.',
      }),
    );
    return;
  }
  renderRefundForm(c, panel, paid);
}

/** A payment's refunds still on their way. */
export function refundsGoing(p: Payment): Payment['refunds'] {
  return p.refunds.filter((r) => r.status === 'creating' || r.status === 'pending');
}

function renderRefundForm(c: Consultation, panel: HTMLElement, paid: Payment, done: string | null = null): void {
  const inFlight = refundsGoing(paid).reduce((s, r) => s + r.amountKopecks, 0);
  const left = paid.amountKopecks - paid.refundedKopecks - inFlight;
  const history = h(
    'ul',
    { class: 'plain', testid: 'refunds' },
    ...paid.refunds.map((r) =>
      h('li', { testid: 'refund-item', text: `${price(r.amountKopecks)} — ${REFUND_STATUS_TEXT[r.status] ?? r.status}` }),
    ),
  );
  const facts = h('p', {
    class: 'c-meta',
    testid: 'refund-left',
    text: `Оплачено ${price(paid.amountKopecks)}; можно вернуть ещё ${price(Math.max(left, 0))}.`,
  });
  const sent = h('p', { class: 'notice-line', testid: 'refund-done', text: done ?? '', attrs: { role: 'status', tabindex: '-1' } });
  sent.hidden = done === null;
  if (left <= 0) {
    panel.replaceChildren(sent, facts, history);
    if (done !== null) sent.focus();
    return;
  }
  const amountId = `refund-amount-${c.id}`;
  const reasonId = `refund-reason-${c.id}`;
  const amount = h('input', {
    testid: 'refund-amount',
    attrs: { id: amountId, type: 'text', inputmode: 'decimal', required: '', autocomplete: 'off', value: rubles(left) },
  });
  const reason = h('textarea', { testid: 'refund-reason', attrs: { id: reasonId, rows: '2', maxlength: '250', required: '' } });
  const error = h('p', { class: 'form-error', testid: 'refund-error', attrs: { role: 'alert' } });
  error.hidden = true;
  const submit = h('button', { class: 'button primary', testid: 'refund-submit', text: 'Вернуть', attrs: { type: 'submit' } });
  const form = h(
    'form',
    { class: 'refund-form', attrs: { novalidate: '' } },
    h('label', { class: 'field-label', text: 'Сумма, ₽', attrs: { for: amountId } }),
    amount,
    h('label', { class: 'field-label', text: 'Причина (увидит только клиника)', attrs: { for: reasonId } }),
    reason,
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const kopecks = parseRubles(amount.value);
    if (kopecks === null || kopecks <= 0 || kopecks > left) {
      say(error, `Укажите сумму от 0,01 до ${rubles(left)} ₽.`);
      amount.setAttribute('aria-invalid', 'true');
      amount.focus();
      return;
    }
    amount.removeAttribute('aria-invalid');
    if (reason.value.trim() === '') {
      say(error, 'Укажите причину возврата.');
      reason.focus();
      return;
    }
    say(error, null);
    const whole = kopecks === left ? 'всю оставшуюся сумму' : `${price(kopecks)} из ${price(left)}`;
    const yes = await confirmAction(
      `Вернуть пациенту ${price(kopecks)}?`,
      `ЮKassa вернёт ${whole} тем же способом, которым платили; пациент получит чек возврата. Отменить возврат нельзя.`,
      'Вернуть',
    );
    if (!yes || host === null) return;
    submit.disabled = true;
    const api = host.api;
    const gen = host.generation();
    const current = (): boolean => host !== null && gen === host.generation();
    api
      .refund(paid.id, kopecks, reason.value.trim())
      .then(
        async (refund) => {
          if (!current()) return;
          const text = `Возврат ${price(kopecks)} отправлен в ЮKassa.`;
          // Sent: said at once, with the refund counted, whatever the re-read below does.
          let fresh: Payment = { ...paid, refunds: [...paid.refunds, refund] };
          try {
            fresh = (await api.payments(c.id)).find((p) => p.id === paid.id) ?? fresh;
          } catch (e) {
            host?.logFailure('reading the payment after a refund', e);
          }
          if (current()) renderRefundForm(c, panel, fresh, text);
        },
        (e: unknown) => {
          if (!current()) return;
          host?.logFailure('refunding', e);
          say(error, errorText(e));
        },
      )
      .finally(() => {
        submit.disabled = false;
      });
  });
  panel.replaceChildren(sent, facts, history, form);
  if (done !== null) sent.focus();
}

/** 150000 → «1500,00». */
function rubles(kopecks: number): string {
  return `${Math.floor(kopecks / 100)},${String(kopecks % 100).padStart(2, '0')}`;
}

/** «1 500,5» or «1500.50» → 150050; null if it is not an amount. */
function parseRubles(text: string): number | null {
  const m = /^(\d+)(?:[.,](\d{1,2}))?$/.exec(text.replace(/[\s\u00a0]/g, ''));
  if (m === null) return null;
  return Number(m[1]) * 100 + Number((m[2] ?? '0').padEnd(2, '0'));
}

// ---- slot conflicts --------------------------------------------------------------------------

async function loadConflicts(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const page = await host.api.slotConflicts(200);
    if (gen !== host.generation()) return;
    const rows = page.items.map((c) => host?.conflictRow(c)).filter((r): r is HTMLLIElement => r !== undefined);
    ui.conflicts.replaceChildren(...rows);
    say(
      ui.conflictsEmpty,
      page.items.length === 0
        ? 'Расхождений с расписанием клиники нет.'
        : page.total > page.items.length
          ? `Показаны ${page.items.length} из ${page.total}.`
          : null,
    );
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the slot conflicts', e);
    say(ui.conflictsEmpty, `Не удалось загрузить расхождения. ${errorText(e)}`);
  }
}

// ---- the audit log ---------------------------------------------------------------------------

const AUDIT_PAGE = 50;
let auditItems: AuditEntry[] = [];
let auditTotal = 0;
let auditRequest = 0;
/** The filter of the entries shown («Показать ещё» goes on with it, not with an edited form). */
let auditApplied: AuditFilter = {};
let auditLoaded = false;

/** The log of one consultation: its id as the filter, and the section brought into view. */
export function showAuditOf(consultationId: string): void {
  ui.auditForm.reset();
  ui.auditObject.value = consultationId;
  void loadAudit(false);
  ui.auditSection.scrollIntoView({ block: 'start' });
  ui.auditTitle.focus({ preventScroll: true });
}

function auditFilter(): AuditFilter | string {
  const from = ui.auditFrom.value;
  const to = ui.auditTo.value;
  if (from !== '' && to !== '' && to < from) return 'Дата «по» раньше даты «с».';
  // Days in the viewer's zone: from the start of «с» to the end of «по».
  return {
    action: ui.auditAction.value,
    objectId: ui.auditObject.value,
    actorId: ui.auditActor.value,
    from: dayRange(from).from,
    to: dayRange(to).to,
  };
}

async function loadAudit(more: boolean): Promise<void> {
  if (host === null) return;
  const filter = more ? auditApplied : auditFilter();
  if (typeof filter === 'string') {
    say(ui.auditStatus, filter);
    return;
  }
  const gen = host.generation();
  const request = ++auditRequest;
  ui.audit.setAttribute('aria-busy', 'true');
  try {
    const page = await host.api.audit(filter, AUDIT_PAGE, more ? auditItems.length : 0);
    if (gen !== host.generation() || request !== auditRequest) return;
    auditItems = more ? [...auditItems, ...page.items] : page.items;
    auditTotal = page.total;
    auditApplied = filter;
    auditLoaded = true;
    if (more) ui.audit.append(...page.items.map(renderAudit));
    else ui.audit.replaceChildren(...auditItems.map(renderAudit));
    ui.auditMore.hidden = auditItems.length >= auditTotal;
    say(ui.auditStatus, auditTotal === 0 ? 'Записей нет.' : `Записей: ${auditTotal}.`);
  } catch (e) {
    if (gen !== host.generation() || request !== auditRequest) return;
    host.logFailure('loading the audit log', e);
    say(ui.auditStatus, `Не удалось загрузить журнал. ${errorText(e)}`);
  } finally {
    if (request === auditRequest) ui.audit.removeAttribute('aria-busy');
  }
}

/** What the log's actions mean, by family, for people (the code stays beside it). */
const ACTION_TEXT: Record<string, string> = {
  'audit.read': 'Просмотр журнала',
  'consultation.book': 'Запись на консультацию',
  'consultation.cancelled': 'Отмена консультации',
  'consultation.completed': 'Консультация завершена',
  'consultation.join': 'Вход в звонок',
  'consultation.list': 'Просмотр списка консультаций',
  'consultation.paid': 'Оплата отмечена',
  'consultation.read': 'Просмотр консультации',
  'consultation.reschedule': 'Перенос консультации',
  'chat.message': 'Сообщение в чате',
  'chat.file': 'Файл в чате',
  'chat.file.read': 'Файл чата открыт',
  'chat.read': 'Чат прочитан',
  'payment.checkout': 'Переход к оплате',
  'refund.request': 'Запрос возврата',
  'refund.succeeded': 'Деньги возвращены',
  'payment.succeeded': 'Оплата прошла',
  'payment.canceled': 'Оплата отменена',
  'consultation.list_overdue': 'Просмотр просроченных',
  'consultation.list_slot_conflicts': 'Просмотр расхождений',
  'consultation.expired': 'Не оплачена вовремя',
  'consultation.started': 'Звонок начался',
  'recording.create': 'Запись начата',
  'recording.stored': 'Запись сохранена',
  'recording.download': 'Скачивание записи',
  'recording.file_served': 'Файл записи выдан',
  'recording.list': 'Просмотр записей',
  'recording.delete': 'Запись удалена',
  'personal_data.read': 'Просмотр персональных данных',
  'questionnaire.read': 'Просмотр анкеты',
  'session.login': 'Вход',
  'session.login_failed': 'Неудачный вход',
  'session.logout': 'Выход',
  'session.esia_login': 'Вход через Госуслуги',
};

function renderAudit(e: AuditEntry): HTMLLIElement {
  const when = new Date(e.at).toLocaleString('ru-RU', { dateStyle: 'short', timeStyle: 'medium' });
  const who =
    e.actorKind === 'system'
      ? 'Система'
      : e.actorKind === 'api_key'
        ? 'Портал (ключ API)'
        : `${capital(ROLE_TEXT[e.actorRole as Role] ?? e.actorRole ?? 'пользователь')}${e.actorId === null ? '' : ` ${e.actorId.slice(0, 8)}`}`;
  const what = ACTION_TEXT[e.action];
  return h(
    'li',
    { class: 'audit-entry', testid: 'audit-entry', attrs: { 'data-action': e.action } },
    h('time', { class: 'audit-when', text: when, attrs: { datetime: e.at } }),
    h('span', { class: 'audit-who', text: who }),
    h(
      'span',
      { class: 'audit-what' },
      what === undefined ? h('code', { text: e.action }) : h('span', { text: what }),
      what === undefined ? '' : ' ',
      what === undefined ? '' : h('code', { text: e.action }),
    ),
    objectCell(e),
    h('span', { class: 'audit-ip', text: e.ip ?? '' }),
  );
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The object, as a button that narrows the log to it. */
function objectCell(e: AuditEntry): HTMLElement {
  const id = e.objectId;
  if (id === null) return h('span', { class: 'audit-object', text: e.objectType });
  const b = h('button', {
    class: 'link-button audit-object',
    testid: 'audit-object-filter',
    text: `${e.objectType} ${id.slice(0, 8)}`,
    attrs: { type: 'button', title: `Все записи об этом объекте (${id})` },
  });
  b.addEventListener('click', () => {
    ui.auditObject.value = id;
    void loadAudit(false);
  });
  return b;
}
