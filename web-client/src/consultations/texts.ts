/**
 * Every text the "my consultations" page shows, in Russian, and the formatting of times and
 * prices. The server's `detail` is for engineers; the page picks its own text by `code`.
 */

import { fileSize } from '../messages';
import { ApiProblem, BadResponse, NetworkError, type ConsultationStatus, type Role } from './api';

export const STATUS_TEXT: Record<ConsultationStatus, string> = {
  booked: 'Ожидает оплаты',
  paid: 'Оплачена',
  in_progress: 'Идёт',
  completed: 'Завершена',
  cancelled: 'Отменена',
  expired: 'Не оплачена вовремя',
};

export const ROLE_TEXT: Record<Role, string> = {
  patient: 'пациент',
  doctor: 'врач',
  admin: 'администратор',
  head_doctor: 'главный врач',
};

export const TEXT = {
  loading: 'Загрузка…',
  sessionExpired: 'Сессия истекла, войдите снова.',
  loggedOut: 'Вы вышли из системы.',
  logoutFailed: 'Выйти не удалось, попробуйте ещё раз.',
  emptyCredentials: 'Введите e-mail и пароль.',
  myConsultations: 'Мои консультации',
  allConsultations: 'Все консультации',
  noConsultations: 'Консультаций пока нет.',
  noConsultationsPatient: 'Консультаций пока нет. Запишитесь к врачу ниже.',
  noOverdue: 'Просроченных консультаций нет.',
  noRecordings: 'Записей пока нет.',
  noRecordingsOfOne: 'Записей нет: звонок не записывали или он ещё не состоялся.',
  noDoctors: 'Сейчас нет врачей для записи.',
  chooseDoctor: 'Выберите врача, чтобы увидеть свободное время.',
  chooseDay: 'Выберите день, затем время. Время указано по вашему часовому поясу.',
  chooseTime: 'Выберите время.',
  noSlots: 'У этого врача нет свободного времени в ближайшие две недели. Выберите другого врача.',
  booked: 'Вы записаны. Консультация появилась в списке выше — оплатите её до указанного времени.',
  cancelReasonRequired: 'Укажите причину отмены — консультация не отменена.',
  cancelled: 'Консультация отменена.',
  conclusionRequired: 'Напишите заключение, прежде чем завершать консультацию.',
  completed: 'Консультация завершена, заключение сохранено.',
  joining: 'Открываем звонок…',
  paying: 'Переходим на страницу оплаты…',
  payEmailHint: 'Чек об оплате придёт на этот адрес (так требует закон о кассовых чеках, 54-ФЗ).',
  payEmailInvalid: 'Введите e-mail, например ivanova@mail.ru.',
  payCreating: 'Платёж создаётся — банк отвечает медленно. Нажмите «Оплатить» ещё раз через минуту.',
  payChecking: 'Проверяем оплату…',
  payPaid: 'Оплачено. Консультация ждёт вас в списке ниже; чек придёт на e-mail.',
  payStillPending:
    'Банк ещё не подтвердил оплату. Статус обновится сам, как только подтверждение придёт; страницу можно закрыть.',
  payClosed: 'Запись больше не ждёт оплаты: она отменена или время на оплату истекло.',
  payLoginFirst: 'Войдите, чтобы увидеть результат оплаты: откройте Vizit по ссылке из личного кабинета клиники.',
  payNotFound: 'Не нашли эту консультацию среди ваших. Откройте список консультаций.',
  refundDone: 'Деньги возвращены',
  refundPending: 'Возврат оформляется — банк зачислит деньги в течение нескольких рабочих дней',
  refundNone: 'Возврата не было. По вопросам возврата обратитесь в клинику.',
  refundFailed: 'Возврат не прошёл. Обратитесь в клинику.',
  refundChecking: 'Проверяем возврат…',
  unsupportedAccount:
    'Эта страница — для пациентов и сотрудников клиники. Войдите под своей учётной записью.',
} as const;

/** Russian text for a failed API call, by the problem's stable `code`. */
export function errorText(e: unknown): string {
  if (e instanceof NetworkError) {
    return 'Нет связи с сервером. Проверьте подключение к интернету и попробуйте снова.';
  }
  if (e instanceof BadResponse) {
    return 'Сервер ответил непонятно. Обновите страницу и попробуйте снова.';
  }
  if (!(e instanceof ApiProblem)) return 'Что-то пошло не так. Обновите страницу и попробуйте снова.';
  switch (e.code) {
    case 'unauthenticated':
    case 'invalid_credentials':
      return TEXT.sessionExpired;
    case 'wrong_credentials':
      return 'Неверный e-mail или пароль.';
    case 'too_many_attempts': {
      const minutes = Math.max(1, Math.ceil((e.retryAfter ?? 60) / 60));
      return `Слишком много неудачных попыток входа. Попробуйте снова через ${minutes} мин.`;
    }
    case 'forbidden':
      return 'У вашей учётной записи нет прав на это действие.';
    case 'not_found':
      return 'Не найдено. Возможно, запись удалена — обновите список.';
    case 'outside_join_window':
      return 'Звонок откроется за 15 минут до начала.';
    case 'not_paid':
      return 'Консультация ещё не оплачена.';
    case 'consultation_closed':
      return 'Консультация уже закрыта, звонок недоступен.';
    case 'slot_taken':
      return 'Этот слот уже занят, выберите другой.';
    case 'slot_in_past':
      return 'Это время уже прошло, выберите другое.';
    case 'invalid_transition':
    case 'concurrent_change':
      return 'Статус консультации изменился. Обновите список и попробуйте снова.';
    case 'not_a_session':
      return 'Эта учётная запись не выходит из системы.';
    case 'invalid_field':
    case 'invalid_body':
    case 'invalid_query':
    case 'invalid_time':
      return 'Сервер не принял введённые данные. Проверьте их и попробуйте снова.';
    case 'contact_required':
      return 'Укажите e-mail для чека.';
    case 'already_paid':
      return 'Консультация уже оплачена.';
    case 'not_payable':
      return 'Эту консультацию уже нельзя оплатить: запись отменена или время на оплату истекло.';
    case 'payments_disabled':
      return 'Онлайн-оплата в этой клинике не подключена. Оплатите консультацию в клинике.';
    case 'payment_provider_unavailable':
      return 'Платёжный сервис сейчас недоступен. Попробуйте через несколько минут.';
    case 'body_too_large':
      return 'Слишком длинный текст. Сократите его и попробуйте снова.';
    case 'internal':
      return 'Ошибка на сервере. Попробуйте позже.';
    default:
      if (e.status >= 500) return `Ошибка на сервере (${e.status}). Попробуйте позже.`;
      return `Не удалось выполнить действие (код ошибки: ${e.code}).`;
  }
}

// ---- times and money -----------------------------------------------------------------------

const LOCALE = 'ru-RU';

/** A formatter for `zone`, or for the browser's own zone if the name is unknown to it. */
function formatter(zone: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  try {
    return new Intl.DateTimeFormat(LOCALE, { ...options, timeZone: zone });
  } catch {
    return new Intl.DateTimeFormat(LOCALE, options);
  }
}

/** The zone's name as people read it, e.g. «Москва, стандартное время» (zone Europe/Moscow). */
function zoneName(at: Date, zone: string): string {
  const part = formatter(zone, { timeZoneName: 'long' })
    .formatToParts(at)
    .find((p) => p.type === 'timeZoneName');
  return part === undefined || part.value === zone ? zone : `${part.value}, ${zone}`;
}

/** The zone this browser lives in (the patient's, the doctor's…). */
export function viewerZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/**
 * A slot's time as «пт, 27 ноября 2026 г., 10:00–10:30» in the viewer's own zone; `zone` is
 * empty when the slot's zone (the doctor's) tells the same clock, else its time there and its
 * name, e.g. «у врача 09:00–09:30 (Москва, стандартное время, Europe/Moscow)». Invalid times
 * come back as the raw strings.
 */
export function slotTime(startsAt: string, endsAt: string, zone: string, viewer = viewerZone()): { when: string; zone: string } {
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    return { when: `${startsAt} – ${endsAt}`, zone };
  }
  const span = (z: string): string => {
    const day = formatter(z, { weekday: 'short', day: 'numeric', month: 'long', year: 'numeric' });
    const time = formatter(z, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    return day.format(start) === day.format(end)
      ? `${day.format(start)}, ${time.format(start)}–${time.format(end)}`
      : `${day.format(start)}, ${time.format(start)} – ${day.format(end)}, ${time.format(end)}`;
  };
  const when = span(viewer);
  const theirs = span(zone);
  if (theirs === when) return { when, zone: '' };
  const time = formatter(zone, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return { when, zone: `у врача ${time.format(start)}–${time.format(end)} (${zoneName(start, zone)})` };
}

/** A day `yyyy-mm-dd` at the viewer's clock as a time range (RFC 3339), from its midnight to the
 * next (23 or 25 hours on a day the clocks change); empty: no range. */
export function dayRange(day: string): { from: string; to: string } {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (m === null) return { from: '', to: '' };
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  return { from: new Date(y, mo, d).toISOString(), to: new Date(y, mo, d + 1).toISOString() };
}

/** The calendar day of `at` in `zone`, as `YYYY-MM-DD`. */
export function dayKey(at: Date, zone: string): string {
  const parts = formatter(zone, { year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(at);
  const get = (t: string): string => parts.find((p) => p.type === t)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/** A day of the strip: «пн», «8», «дек» (for `YYYY-MM-DD`). */
export function dayLabel(key: string): { weekday: string; day: string; month: string; long: string } {
  const at = new Date(`${key}T12:00:00Z`);
  const f = (o: Intl.DateTimeFormatOptions): string => formatter('UTC', o).format(at).replace('.', '');
  return {
    weekday: f({ weekday: 'short' }),
    day: f({ day: 'numeric' }),
    month: f({ month: 'short' }),
    long: f({ weekday: 'long', day: 'numeric', month: 'long' }),
  };
}

/** «14:00» of `at` in `zone`. */
export function clockIn(at: string, zone: string): string {
  return formatter(zone, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(at));
}

/** A moment as «27 ноября, 09:45» in `zone` (e.g. the payment deadline). */
export function moment(at: string, zone: string): string {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return at;
  return formatter(zone, { day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d);
}

/** The day of `at` in `zone`, e.g. «21 декабря»; `ms` earlier (a deadline at midnight is the day before's end). */
export function day(at: string, zone: string, ms = 0): string {
  const d = new Date(Date.parse(at) - ms);
  if (Number.isNaN(d.getTime())) return at;
  return formatter(zone, { day: 'numeric', month: 'long' }).format(d);
}

const RUB = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: 'RUB', minimumFractionDigits: 0, maximumFractionDigits: 2 });

export function price(kopecks: number): string {
  return RUB.format(kopecks / 100);
}

/** Why a payment did not go through (YooKassa's `cancellation_details.reason`). */
export function declineText(reason: string | null): string {
  switch (reason) {
    case 'insufficient_funds':
      return 'на карте недостаточно средств';
    case 'expired_on_confirmation':
      return 'время на оплату истекло';
    case '3d_secure_failed':
      return 'не пройдено подтверждение платежа в банке (3-D Secure)';
    case 'card_expired':
      return 'истёк срок действия карты';
    case 'invalid_card_number':
    case 'invalid_csc':
      return 'неверные данные карты';
    case 'fraud_suspected':
    case 'call_issuer':
    case 'issuer_unavailable':
    case 'payment_method_limit_exceeded':
    case 'payment_method_restricted':
    case 'country_forbidden':
      return 'банк не разрешил платёж — обратитесь в свой банк или оплатите другой картой';
    case 'canceled_by_merchant':
    case 'expired_on_capture':
      return 'платёж отменён: запись больше не ждала оплаты';
    default:
      return 'банк отклонил платёж';
  }
}

/** Russian text of a recording's status. */
export const RECORDING_STATUS_TEXT: Record<string, string> = {
  recording: 'Идёт запись',
  processing: 'Обрабатывается',
  uploading: 'Загружается в хранилище',
  stored: 'Сохранена',
  failed: 'Ошибка',
  deleted: 'Удалена по сроку хранения',
};

/** `83 400` ms → `1:23`. */
export function duration(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** Bytes → `12,3 МБ`. */
export function size(bytes: number | null): string {
  return bytes === null ? '—' : fileSize(bytes);
}
