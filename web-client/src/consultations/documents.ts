/**
 * Documents on the consultations page:
 * - patient: their questionnaires (fill in, save a draft, submit; see when the doctor read it)
 *   and their requests to delete their medical documents;
 * - doctor: a consultation's questionnaires, read-only, and asking for one more;
 * - clinic admin: the deletion requests with their deadlines, answered or extended here.
 *
 * Answers are medical data: nothing here logs them, and they go to the server only.
 */

import {
  type Answer,
  type ApiClient,
  ApiProblem,
  type Consultation,
  type DeletionRequest,
  type Question,
  type Questionnaire,
  type QuestionnaireKind,
  type Role,
} from './api';
import { byTestId, disclosure, h, reconcile, say } from './dom';
import { day, errorText, moment } from './texts';

const KIND_TEXT: Record<QuestionnaireKind, string> = {
  symptoms: 'Анкета перед консультацией',
  anamnesis: 'Анкета о здоровье (анамнез)',
};

const STATUS_TEXT: Record<Questionnaire['status'], string> = {
  assigned: 'Не заполнена',
  draft: 'Черновик',
  submitted: 'Отправлена врачу',
  deleted: 'Удалена',
};

const REQUEST_TEXT: Record<DeletionRequest['status'], string> = {
  pending: 'На рассмотрении',
  done: 'Выполнен',
  refused: 'Отказ',
};

/** What the page gives this module. */
export interface DocumentsHost {
  api: ApiClient;
  /** Bumped on every sign-in and sign-out: answers of an earlier session are dropped. */
  generation(): number;
  logFailure(what: string, e: unknown): void;
}

let host: DocumentsHost | null = null;

const ui = {
  questionnaires: byTestId('questionnaires-section', HTMLElement),
  qStatus: byTestId('questionnaires-status', HTMLParagraphElement),
  qList: byTestId('questionnaires', HTMLUListElement),
  qEmpty: byTestId('questionnaires-empty', HTMLParagraphElement),
  deletion: byTestId('deletion-section', HTMLElement),
  deletionList: byTestId('deletion-requests', HTMLUListElement),
  deletionForm: byTestId('deletion-form', HTMLFormElement),
  deletionComment: byTestId('deletion-comment', HTMLTextAreaElement),
  deletionError: byTestId('deletion-error', HTMLParagraphElement),
  deletionSubmit: byTestId('deletion-submit', HTMLButtonElement),
  admin: byTestId('deletion-admin-section', HTMLElement),
  adminStatus: byTestId('deletion-admin-status', HTMLParagraphElement),
  adminList: byTestId('deletion-admin', HTMLUListElement),
  adminEmpty: byTestId('deletion-admin-empty', HTMLParagraphElement),
};

/** Questionnaires whose form is open (by id): a re-render keeps it open with what was typed. */
const openForms = new Map<string, HTMLFormElement>();
/** Consultations whose questionnaire panel the doctor opened. */
const openPanels = new Set<string>();

export function initDocuments(h0: DocumentsHost): void {
  host = h0;
  ui.deletionForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void requestDeletion();
  });
}

/** Show the sections of `role` (a patient's, an admin's) and load them; none when signed out. */
export function showDocuments(role: Role | null): void {
  ui.questionnaires.hidden = role !== 'patient';
  ui.deletion.hidden = role !== 'patient';
  ui.admin.hidden = role !== 'admin';
  if (role !== null) refreshDocuments(role);
}

export function resetDocuments(): void {
  openForms.clear();
  items.clear();
  openPanels.clear();
  ui.qList.replaceChildren();
  ui.deletionList.replaceChildren();
  ui.adminList.replaceChildren();
  ui.deletionComment.value = '';
  for (const el of [ui.qStatus, ui.adminStatus]) el.textContent = '';
  for (const el of [ui.qEmpty, ui.adminEmpty, ui.deletionError]) say(el, null);
}

/** Reload what the signed-in person sees (the page's poll). */
export function refreshDocuments(role: Role): void {
  if (role === 'patient') {
    void loadQuestionnaires();
    void loadMyRequests();
  }
  if (role === 'admin') void loadAdminRequests();
}

function problemText(e: unknown): string {
  if (e instanceof ApiProblem) {
    switch (e.code) {
      case 'consultation_closed':
        return 'Консультация уже прошла или отменена: анкету больше нельзя изменить.';
      case 'deleted':
        return 'Анкета удалена по вашему запросу.';
      case 'already_assigned':
        return 'Эта анкета уже назначена.';
      case 'request_pending':
        return 'Ваш предыдущий запрос ещё рассматривается — дождитесь ответа клиники.';
      case 'answered':
        return 'На этот запрос уже ответили. Обновите страницу.';
      case 'extended_already':
        return 'Срок уже продлевали: продлить можно только один раз.';
      case 'invalid_answers':
        return 'Проверьте отмеченные ответы.';
    }
  }
  return errorText(e);
}

// ---- the patient's questionnaires ----------------------------------------------------------

async function loadQuestionnaires(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const list = await host.api.myQuestionnaires();
    if (gen !== host.generation()) return;
    const visible = list.filter((q) => q.status !== 'deleted' || q.legalHold !== null);
    reconcile(ui.qList, visible.map(questionnaireItem));
    say(ui.qEmpty, visible.length > 0 ? null : 'Анкет пока нет. Врач или клиника попросят заполнить их перед консультацией.');
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the questionnaires', e);
    ui.qStatus.textContent = `Не удалось загрузить анкеты. ${problemText(e)}`;
  }
}

const items = new Map<string, { sig: string; li: HTMLLIElement }>();

function questionnaireItem(q: Questionnaire): HTMLLIElement {
  const sig = JSON.stringify(q);
  const old = items.get(q.id);
  if (old !== undefined && old.sig === sig) return old.li;
  const li = renderQuestionnaire(q);
  items.set(q.id, { sig, li });
  return li;
}

function renderQuestionnaire(q: Questionnaire): HTMLLIElement {
  const titleId = `q-${q.id}-title`;
  const li = h('li', {
    class: 'consultation',
    testid: 'questionnaire',
    attrs: { 'data-questionnaire-id': q.id, 'data-status': q.status, 'aria-labelledby': titleId },
  });
  li.append(
    h(
      'div',
      { class: 'c-head' },
      h(
        'div',
        { class: 'c-who' },
        h('h3', { class: 'c-title', text: KIND_TEXT[q.kind], attrs: { id: titleId } }),
        h('p', { class: 'c-sub', text: `К консультации ${moment(q.consultationStartsAt, q.timeZone)}` }),
      ),
      h('span', {
        class: 'status',
        testid: 'questionnaire-status',
        text: STATUS_TEXT[q.status],
        attrs: { 'data-status': q.status === 'submitted' ? 'paid' : q.status === 'deleted' ? 'cancelled' : 'booked' },
      }),
    ),
  );
  const meta = h('p', { class: 'c-meta' });
  if (q.submittedAt !== null) meta.append(h('span', { text: `Отправлена ${moment(q.submittedAt, q.timeZone)}` }));
  if (q.readAt !== null) {
    meta.append(h('span', { testid: 'questionnaire-read', text: `Врач прочитал(а) ${moment(q.readAt, q.timeZone)}` }));
  }
  if (q.legalHold !== null) meta.append(h('span', { text: `Хранится по закону: ${q.legalHold}` }));
  if (meta.childNodes.length > 0) li.append(meta);

  const status = h('p', { class: 'notice-line', testid: 'questionnaire-saved', attrs: { role: 'status' } });
  li.append(status);
  if (!q.editable) return li;

  const toggle = h('button', {
    class: q.status === 'submitted' ? 'button secondary' : 'button primary',
    testid: 'fill-questionnaire',
    text: q.status === 'assigned' ? 'Заполнить' : 'Изменить ответы',
    attrs: { type: 'button', 'aria-expanded': 'false', 'aria-describedby': titleId },
  });
  const actions = h('div', { class: 'actions' }, toggle);
  li.append(actions);
  const kept = openForms.get(q.id);
  const form = kept ?? questionnaireForm(q, status);
  form.hidden = kept === undefined;
  toggle.setAttribute('aria-expanded', String(!form.hidden));
  li.append(form);
  toggle.addEventListener('click', () => {
    form.hidden = !form.hidden;
    toggle.setAttribute('aria-expanded', String(!form.hidden));
    if (form.hidden) openForms.delete(q.id);
    else {
      openForms.set(q.id, form);
      form.querySelector<HTMLElement>('input, textarea')?.focus();
    }
  });
  return li;
}

/** One question's control, its error line, and how to read its answer back. */
interface Field {
  question: Question;
  root: HTMLElement;
  error: HTMLParagraphElement;
  read(): Answer | null;
  focus(): void;
}

function field(q: Question, formId: string, value: Answer | undefined): Field {
  const id = `${formId}-${q.id}`;
  const errorId = `${id}-error`;
  const error = h('p', { class: 'form-error', testid: 'answer-error', attrs: { id: errorId, role: 'alert' } });
  error.hidden = true;
  const label = `${q.label}${q.required ? ' (обязательно)' : ''}`;
  const hint = q.hint === null ? null : h('span', { class: 'hint', text: q.hint, attrs: { id: `${id}-hint` } });
  const described = [hint === null ? '' : `${id}-hint`, errorId].filter((s) => s !== '').join(' ');

  if (q.type === 'choice' || q.type === 'multi' || q.type === 'yes_no') {
    const options: [string, string][] =
      q.type === 'yes_no'
        ? [
            ['yes', 'Да'],
            ['no', 'Нет'],
          ]
        : q.options.map((o) => [o, o]);
    const inputs = options.map(([v, text], i) => {
      const input = h('input', {
        attrs: { type: q.type === 'multi' ? 'checkbox' : 'radio', name: id, value: v, id: `${id}-${i}` },
      });
      if (q.type === 'yes_no') input.checked = value === (v === 'yes');
      else if (q.type === 'multi') input.checked = Array.isArray(value) && value.includes(v);
      else input.checked = value === v;
      return { input, row: h('label', { class: 'choice', attrs: { for: `${id}-${i}` } }, input, h('span', { text })) };
    });
    const fieldset = h(
      'fieldset',
      { class: 'field question', testid: 'question', attrs: { 'data-question': q.id, 'aria-describedby': described } },
      h('legend', { class: 'field-label', text: label }),
      ...(hint === null ? [] : [hint]),
      ...inputs.map((i) => i.row),
      error,
    );
    if (q.type !== 'multi') {
      // One answer of several: a radio group, which may be required.
      fieldset.setAttribute('role', 'radiogroup');
      if (q.required) fieldset.setAttribute('aria-required', 'true');
    }
    return {
      question: q,
      root: fieldset,
      error,
      read() {
        const picked = inputs.filter((i) => i.input.checked).map((i) => i.input.value);
        if (q.type === 'multi') return picked.length > 0 ? picked : null;
        const one = picked[0];
        if (one === undefined) return null;
        return q.type === 'yes_no' ? one === 'yes' : one;
      },
      focus() {
        inputs[0]?.input.focus();
      },
    };
  }

  let control: HTMLInputElement | HTMLTextAreaElement;
  if (q.type === 'text') {
    control = h('textarea', { attrs: { id, rows: '3', maxlength: '4000' } });
  } else {
    const type = q.type === 'number' ? 'text' : q.type === 'date' ? 'date' : 'text';
    control = h('input', { attrs: { id, type, maxlength: q.type === 'line' ? '300' : '40' } });
    if (q.type === 'number') control.setAttribute('inputmode', 'decimal');
  }
  control.setAttribute('aria-describedby', described);
  if (q.required) control.setAttribute('aria-required', 'true');
  if (value !== undefined) control.value = String(value);
  const root = h(
    'div',
    { class: 'field question', testid: 'question', attrs: { 'data-question': q.id } },
    h('label', { class: 'field-label', text: label, attrs: { for: id } }),
    ...(hint === null ? [] : [hint]),
    control,
    error,
  );
  return {
    question: q,
    root,
    error,
    read() {
      const v = control.value.trim();
      if (v === '') return null;
      if (q.type === 'number') {
        const n = Number(v.replace(',', '.'));
        return Number.isFinite(n) ? n : v;
      }
      return v;
    },
    focus() {
      control.focus();
    },
  };
}

/** What is wrong with `value` for `q`, in the patient's words, or null. */
function localError(q: Question, value: Answer | null, submitting: boolean): string | null {
  if (value === null) return submitting && q.required ? 'Ответьте на этот вопрос.' : null;
  if (q.type === 'number') {
    if (typeof value !== 'number') return 'Введите число, например 36,6.';
    if ((q.min !== null && value < q.min) || (q.max !== null && value > q.max)) {
      return `Введите число от ${q.min ?? '…'} до ${q.max ?? '…'}.`;
    }
  }
  return null;
}

function questionnaireForm(q: Questionnaire, status: HTMLParagraphElement): HTMLFormElement {
  const formId = `qf-${q.id}`;
  const fields = q.questions.map((question) => field(question, formId, q.answers?.[question.id]));
  const formError = h('p', { class: 'form-error', testid: 'questionnaire-error', attrs: { role: 'alert' } });
  formError.hidden = true;
  const submit = h('button', {
    class: 'button primary',
    testid: 'submit-questionnaire',
    text: 'Отправить врачу',
    attrs: { type: 'submit' },
  });
  const draft = h('button', {
    class: 'button secondary',
    testid: 'save-draft',
    text: 'Сохранить черновик',
    attrs: { type: 'button' },
  });
  const form = h(
    'form',
    { class: 'questionnaire-form', testid: 'questionnaire-form', attrs: { novalidate: '', 'aria-label': q.title } },
    h('p', { class: 'hint', text: `${q.title}. Ответы увидят только вы и врачи клиники.` }),
    ...fields.map((f) => f.root),
    formError,
    h('div', { class: 'actions' }, submit, draft),
  );

  const save = async (submitting: boolean): Promise<void> => {
    if (host === null) return;
    const answers: Record<string, Answer> = {};
    let first: Field | null = null;
    for (const f of fields) {
      const v = f.read();
      const problem = localError(f.question, v, submitting);
      say(f.error, problem);
      f.root.classList.toggle('invalid', problem !== null);
      if (problem !== null && first === null) first = f;
      if (v !== null) answers[f.question.id] = v;
    }
    if (first !== null) {
      say(formError, 'Проверьте отмеченные ответы.');
      first.focus();
      return;
    }
    say(formError, null);
    const gen = host.generation();
    for (const b of [submit, draft]) b.disabled = true;
    try {
      const saved = await host.api.saveQuestionnaire(q.id, answers, submitting);
      if (gen !== host.generation()) return;
      openForms.delete(q.id);
      const li = questionnaireItem(saved);
      const old = ui.qList.querySelector(`[data-questionnaire-id="${q.id}"]`);
      if (old !== null && old !== li) old.replaceWith(li);
      byTestId('questionnaire-saved', HTMLParagraphElement, li).textContent = submitting
        ? 'Анкета отправлена врачу. Спасибо!'
        : 'Черновик сохранён. Отправьте анкету, когда ответите на все вопросы.';
      byTestId('fill-questionnaire', HTMLButtonElement, li).focus();
    } catch (e) {
      if (gen !== host.generation()) return;
      host.logFailure('saving a questionnaire', e);
      if (e instanceof ApiProblem && e.code === 'invalid_answers') {
        for (const f of fields) {
          const bad = e.detail.includes(`answers.${f.question.id}:`);
          say(f.error, bad ? 'Проверьте этот ответ.' : null);
          f.root.classList.toggle('invalid', bad);
        }
      }
      say(formError, problemText(e));
    } finally {
      for (const b of [submit, draft]) b.disabled = false;
    }
  };
  status.textContent = '';
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void save(true);
  });
  draft.addEventListener('click', () => void save(false));
  return form;
}

// ---- the patient's deletion requests -------------------------------------------------------

async function loadMyRequests(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const list = await host.api.myDeletionRequests();
    if (gen !== host.generation()) return;
    ui.deletionList.replaceChildren(...list.map((r) => requestItem(r, false)));
    const pending = list.some((r) => r.status === 'pending');
    ui.deletionForm.hidden = pending;
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the deletion requests', e);
    say(ui.deletionError, `Не удалось загрузить запросы. ${problemText(e)}`);
  }
}

async function requestDeletion(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  ui.deletionSubmit.disabled = true;
  say(ui.deletionError, null);
  try {
    await host.api.requestDeletion(ui.deletionComment.value.trim());
    if (gen !== host.generation()) return;
    ui.deletionComment.value = '';
    await loadMyRequests();
    ui.deletionList.querySelector<HTMLElement>('h3')?.focus();
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('asking to delete documents', e);
    say(ui.deletionError, problemText(e));
  } finally {
    ui.deletionSubmit.disabled = false;
  }
}

function requestItem(r: DeletionRequest, forClinic: boolean): HTMLLIElement {
  const titleId = `r-${r.id}-title`;
  const li = h('li', {
    class: 'consultation',
    testid: forClinic ? 'admin-deletion-request' : 'deletion-request',
    attrs: { 'data-request-id': r.id, 'data-status': r.status, 'aria-labelledby': titleId },
  });
  const title = forClinic ? r.patient.name : `Запрос от ${moment(r.createdAt, r.timeZone)}`;
  li.append(
    h(
      'div',
      { class: 'c-head' },
      h(
        'div',
        { class: 'c-who' },
        h('h3', { class: 'c-title', text: title, attrs: { id: titleId, tabindex: '-1' } }),
        h('p', {
          class: 'c-sub',
          text: forClinic ? `Запрос от ${moment(r.createdAt, r.timeZone)}, № ${r.id.slice(0, 8)}` : `№ ${r.id.slice(0, 8)}`,
        }),
      ),
      h('span', {
        class: 'status',
        testid: 'request-status',
        text: REQUEST_TEXT[r.status],
        attrs: { 'data-status': r.status === 'pending' ? 'booked' : r.status === 'done' ? 'paid' : 'cancelled' },
      }),
    ),
  );
  const meta = h('p', { class: 'c-meta' });
  if (r.status === 'pending') {
    // The deadline is midnight after its last day: the day itself is what people read.
    meta.append(h('span', { testid: 'request-due', text: `Ответ до ${day(r.dueAt, r.timeZone, 1)} включительно` }));
    if (r.overdue) meta.append(h('span', { class: 'c-warn', testid: 'request-overdue', text: 'Срок ответа истёк' }));
  }
  if (r.answeredAt !== null) meta.append(h('span', { text: `Ответ ${moment(r.answeredAt, r.timeZone)}` }));
  if (r.status === 'done') {
    meta.append(h('span', { testid: 'request-act', text: `Удалено анкет: ${r.deleted}; оставлено: ${r.kept.length}` }));
  }
  li.append(meta);
  if (r.extensionReason !== null) li.append(h('p', { class: 'c-meta', text: `Срок продлён: ${r.extensionReason}` }));
  for (const k of r.kept) li.append(h('p', { class: 'c-meta', text: `Оставлена ${KIND_TEXT[k.kind as QuestionnaireKind] ?? k.kind}: ${k.reason}` }));
  if (r.answer !== null) {
    li.append(
      h(
        'div',
        { class: 'c-conclusion' },
        h('p', { class: 'c-label', text: r.status === 'refused' ? 'Причина отказа' : 'Комментарий клиники' }),
        h('p', { class: 'c-text', testid: 'request-answer', text: r.answer }),
      ),
    );
  }
  if (forClinic && r.comment !== null) li.append(h('p', { class: 'c-meta', text: `Комментарий пациента: ${r.comment}` }));
  if (forClinic && r.status === 'pending') li.append(answerForm(r, titleId));
  return li;
}

// ---- the clinic's deletion requests --------------------------------------------------------

async function loadAdminRequests(): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  try {
    const page = await host.api.deletionRequests(100);
    if (gen !== host.generation()) return;
    // A form being typed in stays; the rest is rebuilt.
    const typing = document.activeElement?.closest('[data-testid="admin-deletion-request"]');
    const rows = page.items.map((r) => {
      const old = ui.adminList.querySelector<HTMLLIElement>(`[data-request-id="${r.id}"]`);
      return old !== null && old === typing && r.status === 'pending' ? old : requestItem(r, true);
    });
    reconcile(ui.adminList, rows);
    say(ui.adminEmpty, page.items.length > 0 ? null : 'Запросов нет.');
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the deletion requests', e);
    ui.adminStatus.textContent = `Не удалось загрузить запросы. ${problemText(e)}`;
  }
}

function answerForm(r: DeletionRequest, titleId: string): HTMLElement {
  const areaId = `r-${r.id}-reason`;
  const area = h('textarea', { testid: 'request-reason', attrs: { id: areaId, rows: '3', maxlength: '2000' } });
  const error = h('p', { class: 'form-error', testid: 'request-error', attrs: { role: 'alert' } });
  error.hidden = true;
  const button = (testid: string, text: string, cls: string): HTMLButtonElement =>
    h('button', { class: `button ${cls}`, testid, text, attrs: { type: 'button', 'aria-describedby': titleId } });
  const done = button('request-done', 'Документы удалены', 'primary');
  const refuse = button('request-refuse', 'Отказать', 'secondary');
  const extend = button('request-extend', 'Продлить срок', 'secondary');
  const all = [done, refuse, extend];
  const act = async (what: 'done' | 'refused' | 'extend'): Promise<void> => {
    if (host === null) return;
    const reason = area.value.trim();
    if (what !== 'done' && reason === '') {
      say(error, what === 'refused' ? 'Укажите причину отказа (закон, который требует хранить документы).' : 'Укажите причину продления.');
      area.focus();
      return;
    }
    say(error, null);
    const gen = host.generation();
    for (const b of all) b.disabled = true;
    try {
      if (what === 'extend') await host.api.extendDeletion(r.id, reason);
      else await host.api.answerDeletion(r.id, what, reason);
      if (gen !== host.generation()) return;
      ui.adminStatus.textContent =
        what === 'extend' ? 'Срок продлён, пациент уведомлён.' : 'Ответ сохранён, пациент уведомлён.';
      (document.activeElement as HTMLElement | null)?.blur();
      await loadAdminRequests();
    } catch (e) {
      if (gen !== host.generation()) return;
      host.logFailure('answering a deletion request', e);
      say(error, problemText(e));
    } finally {
      for (const b of all) b.disabled = false;
    }
  };
  done.addEventListener('click', () => void act('done'));
  refuse.addEventListener('click', () => void act('refused'));
  extend.addEventListener('click', () => void act('extend'));
  return h(
    'div',
    { class: 'complete' },
    h('label', { class: 'field-label', text: 'Причина или комментарий для пациента', attrs: { for: areaId } }),
    area,
    error,
    h('div', { class: 'actions' }, ...all),
  );
}

// ---- the doctor's view of a consultation's questionnaires ---------------------------------

/** The «Анкеты пациента» button and its panel for a consultation row (doctors, head doctors). */
export function questionnairePanel(c: Consultation, titleId: string): HTMLElement[] {
  return disclosure({
    key: c.id,
    text: 'Анкеты пациента',
    testid: 'show-questionnaires',
    panelTestid: 'questionnaires-panel',
    panelClass: 'c-documents',
    describedBy: titleId,
    open: openPanels,
    fill: (panel) => void fillPanel(c, panel),
  });
}

function answerText(a: Answer | undefined): string {
  if (a === undefined) return '—';
  if (typeof a === 'boolean') return a ? 'Да' : 'Нет';
  if (Array.isArray(a)) return a.join(', ');
  return String(a);
}

async function fillPanel(c: Consultation, panel: HTMLElement): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  panel.setAttribute('aria-busy', 'true');
  try {
    const list = await host.api.questionnairesOf(c.id);
    if (gen !== host.generation()) return;
    const parts: HTMLElement[] = [];
    if (list.length === 0) parts.push(h('p', { class: 'empty', text: 'Анкет нет.' }));
    for (const q of list) {
      const box = h(
        'section',
        { class: 'c-conclusion', testid: 'doctor-questionnaire', attrs: { 'data-kind': q.kind } },
        h('p', { class: 'c-label', text: `${KIND_TEXT[q.kind]} — ${STATUS_TEXT[q.status].toLowerCase()}` }),
      );
      if (q.answers !== null && q.status === 'submitted') {
        const dl = h('dl', { class: 'answers' });
        for (const question of q.questions) {
          dl.append(h('dt', { text: question.label }), h('dd', { text: answerText(q.answers[question.id]) }));
        }
        box.append(dl);
      } else if (q.status !== 'deleted') {
        box.append(h('p', { class: 'c-meta', text: 'Пациент ещё не отправил ответы.' }));
      }
      parts.push(box);
    }
    const canAsk = c.status === 'booked' || c.status === 'paid' || c.status === 'in_progress';
    const missing = (['symptoms', 'anamnesis'] as const).filter((k) => !list.some((q) => q.kind === k));
    const error = h('p', { class: 'form-error', testid: 'panel-error', attrs: { role: 'alert' } });
    error.hidden = true;
    if (canAsk && missing.length > 0 && host !== null) {
      const actions = h('div', { class: 'actions' });
      for (const kind of missing) {
        const ask = h('button', {
          class: 'button secondary',
          testid: `assign-${kind}`,
          text: `Попросить заполнить: ${KIND_TEXT[kind].toLowerCase()}`,
          attrs: { type: 'button' },
        });
        ask.addEventListener('click', () => {
          ask.disabled = true;
          void host?.api
            .assignQuestionnaire(c.id, kind)
            .then(() => fillPanel(c, panel))
            .catch((e: unknown) => {
              host?.logFailure('assigning a questionnaire', e);
              say(error, problemText(e));
              ask.disabled = false;
            });
        });
        actions.append(ask);
      }
      parts.push(actions);
    }
    parts.push(error);
    panel.replaceChildren(...parts);
  } catch (e) {
    if (gen !== host.generation()) return;
    host.logFailure('loading the questionnaires', e);
    panel.replaceChildren(h('p', { class: 'form-error', text: `Не удалось загрузить анкеты. ${problemText(e)}` }));
  } finally {
    panel.removeAttribute('aria-busy');
  }
}
