/**
 * The REST API under `/api/v1` (`api/src/routes.rs`): a small fetch wrapper that sends the
 * session token, turns `application/problem+json` answers into {@link ApiProblem}, and checked
 * decoders for the response bodies the page uses (camelCase, as the server writes them).
 *
 * Nothing here logs a request or response body: they carry tokens and personal data.
 */

export const API_BASE = '/api/v1';

export type Role = 'patient' | 'doctor' | 'admin' | 'head_doctor';

export type ConsultationStatus = 'booked' | 'paid' | 'in_progress' | 'completed' | 'cancelled' | 'expired';

export interface User {
  id: string;
  role: Role;
  name: string;
  /** How the session was opened (`esia`, `password`, `portal`, `demo`), when known. */
  via?: string;
}

/** How one may sign in on this server. */
export interface AuthOptions {
  esia: boolean;
  devLogin: boolean;
  /** Where patients get help (`clinic.help`), if the clinic said. */
  help: string | null;
  /** Patients may download their consultations' recordings. */
  patientRecordings: boolean;
  /** A patient's cancellation this many minutes ahead is refunded; null without payments. */
  refundNoticeMinutes: number | null;
}

/** What ESIA gave about the signed-in patient («Мои данные»). */
export interface PersonalData {
  data: {
    lastName: string | null;
    firstName: string | null;
    middleName: string | null;
    birthDate: string | null;
    gender: string | null;
    snils: string | null;
    trusted: boolean;
    email: string | null;
    mobile: string | null;
    omsPolicy: string | null;
    passport: { series: string; number: string; issueDate: string | null; issuedBy: string | null } | null;
    address: string | null;
  };
  scopes: string[];
  fetchedAt: string;
  consents: { kind: string; version: string; givenAt: string }[];
}

export interface Session {
  token: string;
  expiresAt: string;
  user: User;
}

export interface Consultation {
  id: string;
  slotId: string;
  status: ConsultationStatus;
  doctor: { id: string; name: string; specialty: string };
  patient: { id: string; name: string };
  priceKopecks: number;
  startsAt: string;
  endsAt: string;
  timeZone: string;
  payBy: string;
  paidAt: string | null;
  cancelledAt: string | null;
  cancelReason: string | null;
  conclusion: string | null;
  overdue: boolean;
  /** Set when the booked time changed in the clinic's schedule (Bitrix24) under it. */
  slotConflict: string | null;
  /** A patient who cancels by then gets the money back; null without payments. */
  refundableUntil: string | null;
  /** The call may be joined from this moment until `joinClosesAt`. */
  joinOpensAt: string | null;
  joinClosesAt: string | null;
}

/** A message of a consultation's chat (`docs/chat.md`). */
export interface ChatEntry {
  id: string;
  seq: number;
  senderRole: 'patient' | 'doctor';
  senderName: string;
  mine: boolean;
  text: string | null;
  file: { name: string; contentType: string; sizeBytes: number } | null;
  conclusion: boolean;
  createdAt: string;
}

/** The clinic's search of consultations (all optional; empty: not filtered). */
export interface ListFilter {
  q?: string;
  status?: string;
  /** Starting at or after (RFC 3339)… */
  from?: string;
  /** …and before. */
  to?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Doctor {
  id: string;
  name: string;
  specialty: string;
  timeZone: string;
  /** The doctor's own price; null: each slot has its own. */
  priceKopecks: number | null;
}

export interface Slot {
  id: string;
  doctorId: string;
  startsAt: string;
  endsAt: string;
  timeZone: string;
  priceKopecks: number;
}

export interface JoinLink {
  callUrl: string;
}

/** An error answer of the API (RFC 9457 problem document with the server's stable `code`). */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    /** Seconds to wait before trying again (a `429`'s `Retry-After`). */
    readonly retryAfter: number | null = null,
  ) {
    super(`HTTP ${status} ${code}`);
    this.name = 'ApiProblem';
  }
}

/** The request never got an answer (offline, server down, connection reset). */
export class NetworkError extends Error {
  constructor() {
    super('network error');
    this.name = 'NetworkError';
  }
}

/** The answer was not what the API documents (a proxy's error page, a newer server…). */
export class BadResponse extends Error {
  constructor(what: string) {
    super(`unexpected response: ${what}`);
    this.name = 'BadResponse';
  }
}

// ---- decoders ------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, what: string): Json {
  if (!isObject(v)) throw new BadResponse(`${what} is not an object`);
  return v;
}

function str(o: Json, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new BadResponse(`${key} is not a string`);
  return v;
}

function optStr(o: Json, key: string): string | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new BadResponse(`${key} is not a string`);
  return v;
}

function num(o: Json, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BadResponse(`${key} is not a number`);
  return v;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new BadResponse(`${what} is not an array`);
  return v;
}

const ROLES: readonly Role[] = ['patient', 'doctor', 'admin', 'head_doctor'];
const STATUSES: readonly ConsultationStatus[] = ['booked', 'paid', 'in_progress', 'completed', 'cancelled', 'expired'];

function role(o: Json, key: string): Role {
  const v = str(o, key);
  const found = ROLES.find((r) => r === v);
  if (found === undefined) throw new BadResponse(`unknown role ${v}`);
  return found;
}

function status(o: Json, key: string): ConsultationStatus {
  const v = str(o, key);
  const found = STATUSES.find((s) => s === v);
  if (found === undefined) throw new BadResponse(`unknown status ${v}`);
  return found;
}

function decodeUser(v: unknown): User {
  const o = obj(v, 'user');
  return { id: str(o, 'id'), role: role(o, 'role'), name: str(o, 'name') };
}

function decodeSession(v: unknown): Session {
  const o = obj(v, 'session');
  return { token: str(o, 'token'), expiresAt: str(o, 'expiresAt'), user: decodeUser(o['user']) };
}

/** `GET /me`: a person, or null for an API key (the portal), which this page does not serve. */
function decodeMe(v: unknown): User | null {
  const o = obj(v, 'me');
  if (o['kind'] !== 'user') return null;
  const via = optStr(o, 'via');
  return via === null ? decodeUser(o) : { ...decodeUser(o), via };
}

function decodeAuthOptions(v: unknown): AuthOptions {
  const o = obj(v, 'auth options');
  return {
    esia: o['esia'] === true,
    devLogin: o['devLogin'] === true,
    help: typeof o['help'] === 'string' && o['help'] !== '' ? o['help'] : null,
    patientRecordings: o['patientRecordings'] === true,
    refundNoticeMinutes: optNum(o, 'refundNoticeMinutes'),
  };
}

function decodePersonalData(v: unknown): PersonalData {
  const o = obj(v, 'personal data');
  const d = obj(o['data'], 'data');
  const p = d['passport'] === undefined || d['passport'] === null ? null : obj(d['passport'], 'passport');
  return {
    data: {
      lastName: optStr(d, 'lastName'),
      firstName: optStr(d, 'firstName'),
      middleName: optStr(d, 'middleName'),
      birthDate: optStr(d, 'birthDate'),
      gender: optStr(d, 'gender'),
      snils: optStr(d, 'snils'),
      trusted: d['trusted'] === true,
      email: optStr(d, 'email'),
      mobile: optStr(d, 'mobile'),
      omsPolicy: optStr(d, 'omsPolicy'),
      passport:
        p === null
          ? null
          : { series: str(p, 'series'), number: str(p, 'number'), issueDate: optStr(p, 'issueDate'), issuedBy: optStr(p, 'issuedBy') },
      address: optStr(d, 'address'),
    },
    scopes: arr(o['scopes'], 'scopes').filter((s): s is string => typeof s === 'string'),
    fetchedAt: str(o, 'fetchedAt'),
    consents: arr(o['consents'], 'consents').map((c) => {
      const x = obj(c, 'consent');
      return { kind: str(x, 'kind'), version: str(x, 'version'), givenAt: str(x, 'givenAt') };
    }),
  };
}

/** One recording in the clinic's catalogue (admins and head doctors). */
export interface Recording {
  id: string;
  consultationId: string;
  consultationStartsAt: string;
  doctorName: string;
  patientName: string;
  kind: 'participant' | 'composite';
  participantRole: string | null;
  status: string;
  durationMs: number | null;
  sizeBytes: number | null;
  createdAt: string;
}

/** One entry of the audit log (admins). */
export interface AuditEntry {
  id: number;
  at: string;
  /** user, api_key or system */
  actorKind: string;
  actorId: string | null;
  actorRole: string | null;
  action: string;
  objectType: string;
  objectId: string | null;
  ip: string | null;
}

function decodeAudit(v: unknown): AuditEntry {
  const o = obj(v, 'audit entry');
  return {
    id: num(o, 'id'),
    at: str(o, 'at'),
    actorKind: str(o, 'actorKind'),
    actorId: optStr(o, 'actorId'),
    actorRole: optStr(o, 'actorRole'),
    action: str(o, 'action'),
    objectType: str(o, 'objectType'),
    objectId: optStr(o, 'objectId'),
    ip: optStr(o, 'ip'),
  };
}

/** What the audit log is filtered by (all optional). */
export interface AuditFilter {
  action?: string;
  objectId?: string;
  actorId?: string;
  /** RFC 3339. */
  from?: string;
  to?: string;
}

/** A short-lived download link. */
export interface DownloadLink {
  url: string;
  expiresAt: string;
  fileName: string;
}

function optNum(o: Json, key: string): number | null {
  const v = o[key];
  return typeof v === 'number' ? v : null;
}

function decodeRecording(v: unknown): Recording {
  const o = obj(v, 'recording');
  return {
    id: str(o, 'id'),
    consultationId: str(o, 'consultationId'),
    consultationStartsAt: str(o, 'consultationStartsAt'),
    doctorName: str(o, 'doctorName'),
    patientName: typeof o['patientName'] === 'string' ? o['patientName'] : '',
    kind: str(o, 'kind') === 'composite' ? 'composite' : 'participant',
    participantRole: optStr(o, 'participantRole'),
    status: str(o, 'status'),
    durationMs: optNum(o, 'durationMs'),
    sizeBytes: optNum(o, 'sizeBytes'),
    createdAt: str(o, 'createdAt'),
  };
}

function decodeLink(v: unknown): DownloadLink {
  const o = obj(v, 'download link');
  return { url: str(o, 'url'), expiresAt: str(o, 'expiresAt'), fileName: str(o, 'fileName') };
}

function decodeConsultation(v: unknown): Consultation {
  const o = obj(v, 'consultation');
  const doctor = obj(o['doctor'], 'doctor');
  const patient = obj(o['patient'], 'patient');
  return {
    id: str(o, 'id'),
    slotId: str(o, 'slotId'),
    status: status(o, 'status'),
    doctor: { id: str(doctor, 'id'), name: str(doctor, 'name'), specialty: str(doctor, 'specialty') },
    patient: { id: str(patient, 'id'), name: str(patient, 'name') },
    priceKopecks: num(o, 'priceKopecks'),
    startsAt: str(o, 'startsAt'),
    endsAt: str(o, 'endsAt'),
    timeZone: str(o, 'timeZone'),
    payBy: str(o, 'payBy'),
    paidAt: optStr(o, 'paidAt'),
    cancelledAt: optStr(o, 'cancelledAt'),
    cancelReason: optStr(o, 'cancelReason'),
    conclusion: optStr(o, 'conclusion'),
    joinOpensAt: optStr(o, 'joinOpensAt'),
    joinClosesAt: optStr(o, 'joinClosesAt'),
    overdue: o['overdue'] === true,
    slotConflict: optStr(o, 'slotConflict'),
    refundableUntil: optStr(o, 'refundableUntil'),
  };
}

function decodeChatEntry(v: unknown): ChatEntry {
  const o = obj(v, 'chat message');
  const file = o['file'] === null || o['file'] === undefined ? null : obj(o['file'], 'chat file');
  return {
    id: str(o, 'id'),
    seq: num(o, 'seq'),
    senderRole: oneOf(o, 'senderRole', ['patient', 'doctor'] as const),
    senderName: str(o, 'senderName'),
    mine: o['mine'] === true,
    text: optStr(o, 'text'),
    file: file === null ? null : { name: str(file, 'name'), contentType: str(file, 'contentType'), sizeBytes: num(file, 'sizeBytes') },
    conclusion: o['conclusion'] === true,
    createdAt: str(o, 'createdAt'),
  };
}

function decodePage<T>(v: unknown, item: (v: unknown) => T): Page<T> {
  const o = obj(v, 'page');
  return {
    items: arr(o['items'], 'items').map(item),
    total: num(o, 'total'),
    limit: num(o, 'limit'),
    offset: num(o, 'offset'),
  };
}

function decodeDoctor(v: unknown): Doctor {
  const o = obj(v, 'doctor');
  return {
    id: str(o, 'id'),
    name: str(o, 'name'),
    specialty: str(o, 'specialty'),
    timeZone: str(o, 'timeZone'),
    priceKopecks: optNum(o, 'priceKopecks'),
  };
}

function decodeSlot(v: unknown): Slot {
  const o = obj(v, 'slot');
  return {
    id: str(o, 'id'),
    doctorId: str(o, 'doctorId'),
    startsAt: str(o, 'startsAt'),
    endsAt: str(o, 'endsAt'),
    timeZone: str(o, 'timeZone'),
    priceKopecks: num(o, 'priceKopecks'),
  };
}

function decodeJoin(v: unknown): JoinLink {
  const o = obj(v, 'join');
  const callUrl = str(o, 'callUrl');
  // Only ever navigate within this site: the URL comes from the server, but a relative path
  // check costs nothing and rules out "javascript:" or another origin.
  if (!callUrl.startsWith('/call#') && !callUrl.startsWith('/call?')) throw new BadResponse('callUrl is not a call page path');
  return { callUrl };
}

/** A refund of a payment. */
export interface Refund {
  id: string;
  /** creating, pending, succeeded, canceled, failed */
  status: string;
  amountKopecks: number;
  createdAt: string;
  succeededAt: string | null;
}

/** A payment attempt of a consultation (YooKassa). */
export interface Payment {
  id: string;
  consultationId: string;
  /** awaiting_contact, creating, pending, waiting_for_capture, succeeded, canceled, failed */
  status: string;
  amountKopecks: number;
  refundedKopecks: number;
  /** YooKassa's page where the patient pays, while pending. */
  confirmationUrl: string | null;
  cancelReason: string | null;
  createdAt: string;
  refunds: Refund[];
}

function decodeRefund(v: unknown): Refund {
  const o = obj(v, 'refund');
  return {
    id: str(o, 'id'),
    status: str(o, 'status'),
    amountKopecks: num(o, 'amountKopecks'),
    createdAt: str(o, 'createdAt'),
    succeededAt: optStr(o, 'succeededAt'),
  };
}

function decodePayment(v: unknown): Payment {
  const o = obj(v, 'payment');
  const url = optStr(o, 'confirmationUrl');
  // The page navigates to it: a web address only, never "javascript:" or the like.
  if (url !== null && !/^https?:\/\//.test(url)) throw new BadResponse('confirmationUrl is not an http(s) URL');
  return {
    id: str(o, 'id'),
    consultationId: str(o, 'consultationId'),
    status: str(o, 'status'),
    amountKopecks: num(o, 'amountKopecks'),
    refundedKopecks: num(o, 'refundedKopecks'),
    confirmationUrl: url,
    cancelReason: optStr(o, 'cancelReason'),
    createdAt: str(o, 'createdAt'),
    refunds: arr(o['refunds'], 'refunds').map(decodeRefund),
  };
}

// ---- documents -----------------------------------------------------------------------------

export type QuestionType = 'text' | 'line' | 'choice' | 'multi' | 'yes_no' | 'number' | 'date';
export type QuestionnaireKind = 'symptoms' | 'anamnesis';
export type QuestionnaireStatus = 'assigned' | 'draft' | 'submitted' | 'deleted';
export type Answer = string | number | boolean | string[];

export interface Question {
  id: string;
  label: string;
  type: QuestionType;
  required: boolean;
  options: string[];
  min: number | null;
  max: number | null;
  hint: string | null;
}

/** A questionnaire of a consultation, with the form version it was assigned with. */
export interface Questionnaire {
  id: string;
  consultationId: string;
  kind: QuestionnaireKind;
  status: QuestionnaireStatus;
  title: string;
  questions: Question[];
  /** Null for whoever may not read them (a clinic admin) and once deleted. */
  answers: Record<string, Answer> | null;
  editable: boolean;
  consultationStartsAt: string;
  timeZone: string;
  submittedAt: string | null;
  readAt: string | null;
  legalHold: string | null;
}

/** A patient's request to delete their medical documents. */
export interface DeletionRequest {
  id: string;
  patient: { id: string; name: string };
  comment: string | null;
  status: 'pending' | 'done' | 'refused';
  createdAt: string;
  dueAt: string;
  /** The clinic's zone: the deadline's day is in it. */
  timeZone: string;
  overdue: boolean;
  extensionReason: string | null;
  answeredAt: string | null;
  answer: string | null;
  deleted: number;
  kept: { kind: string; reason: string }[];
}

const QUESTION_TYPES: readonly QuestionType[] = ['text', 'line', 'choice', 'multi', 'yes_no', 'number', 'date'];

function oneOf<T extends string>(o: Json, key: string, allowed: readonly T[]): T {
  const v = str(o, key);
  const found = allowed.find((a) => a === v);
  if (found === undefined) throw new BadResponse(`unknown ${key} ${v}`);
  return found;
}

function decodeQuestion(v: unknown): Question {
  const o = obj(v, 'question');
  const options = o['options'] === undefined ? [] : arr(o['options'], 'options').map(String);
  return {
    id: str(o, 'id'),
    label: str(o, 'label'),
    type: oneOf(o, 'type', QUESTION_TYPES),
    required: o['required'] === true,
    options,
    min: optNum(o, 'min'),
    max: optNum(o, 'max'),
    hint: optStr(o, 'hint'),
  };
}

function decodeAnswers(v: unknown): Record<string, Answer> | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, 'answers');
  const out: Record<string, Answer> = {};
  for (const [key, value] of Object.entries(o)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
    else if (Array.isArray(value)) out[key] = value.map(String);
  }
  return out;
}

function decodeQuestionnaire(v: unknown): Questionnaire {
  const o = obj(v, 'questionnaire');
  const form = obj(o['form'], 'form');
  return {
    id: str(o, 'id'),
    consultationId: str(o, 'consultationId'),
    kind: oneOf(o, 'kind', ['symptoms', 'anamnesis'] as const),
    status: oneOf(o, 'status', ['assigned', 'draft', 'submitted', 'deleted'] as const),
    title: str(form, 'title'),
    questions: arr(form['questions'], 'questions').map(decodeQuestion),
    answers: decodeAnswers(o['answers']),
    editable: o['editable'] === true,
    consultationStartsAt: str(o, 'consultationStartsAt'),
    timeZone: str(o, 'timeZone'),
    submittedAt: optStr(o, 'submittedAt'),
    readAt: optStr(o, 'readAt'),
    legalHold: optStr(o, 'legalHold'),
  };
}

function decodeDeletionRequest(v: unknown): DeletionRequest {
  const o = obj(v, 'deletion request');
  const patient = obj(o['patient'], 'patient');
  const act = isObject(o['act']) ? o['act'] : null;
  const kept =
    act === null
      ? []
      : arr(act['kept'], 'kept').map((k) => {
          const ko = obj(k, 'kept');
          return { kind: str(obj(ko['document'], 'document'), 'kind'), reason: str(ko, 'reason') };
        });
  return {
    id: str(o, 'id'),
    patient: { id: str(patient, 'id'), name: str(patient, 'name') },
    comment: optStr(o, 'comment'),
    status: oneOf(o, 'status', ['pending', 'done', 'refused'] as const),
    createdAt: str(o, 'createdAt'),
    dueAt: str(o, 'dueAt'),
    timeZone: str(o, 'timeZone'),
    overdue: o['overdue'] === true,
    extensionReason: optStr(o, 'extensionReason'),
    answeredAt: optStr(o, 'answeredAt'),
    answer: optStr(o, 'answer'),
    deleted: act === null ? 0 : arr(act['deleted'], 'deleted').length,
    kept,
  };
}

function decodeQuestionnaires(v: unknown): Questionnaire[] {
  return arr(obj(v, 'list')['items'], 'items').map(decodeQuestionnaire);
}

// ---- notifications -------------------------------------------------------------------------

export type Channel = 'email' | 'max' | 'edna';
const CHANNELS: readonly Channel[] = ['email', 'max', 'edna'];

/** A person's notification channels. */
export interface MyChannels {
  channels: { channel: Channel; enabled: boolean; reachable: boolean; reports: string[] }[];
  order: Channel[];
  chosen: boolean;
  fallback: boolean;
  maxLinkedAt: string | null;
}

/** A notification on one channel, with what the channel can report. */
export interface Delivery {
  channel: string;
  status: string;
  reports: string[];
  detail: string | null;
  sentAt: string | null;
  deliveredAt: string | null;
  readAt: string | null;
}

export interface Notice {
  id: string;
  event: string;
  recipientRole: string;
  consultationId: string | null;
  createdAt: string;
  deliveries: Delivery[];
}

function channel(v: unknown): Channel {
  const found = CHANNELS.find((c) => c === v);
  if (found === undefined) throw new BadResponse(`unknown channel ${String(v)}`);
  return found;
}

function decodeMyChannels(v: unknown): MyChannels {
  const o = obj(v, 'channels');
  return {
    channels: arr(o['channels'], 'channels').map((c) => {
      const co = obj(c, 'channel');
      return {
        channel: channel(co['channel']),
        enabled: co['enabled'] === true,
        reachable: co['reachable'] === true,
        reports: arr(co['reports'], 'reports').map(String),
      };
    }),
    order: arr(o['order'], 'order').map(channel),
    chosen: o['chosen'] === true,
    fallback: o['fallback'] === true,
    maxLinkedAt: optStr(o, 'maxLinkedAt'),
  };
}

function decodeNotice(v: unknown): Notice {
  const o = obj(v, 'notification');
  return {
    id: str(o, 'id'),
    event: str(o, 'event'),
    recipientRole: str(o, 'recipientRole'),
    consultationId: optStr(o, 'consultationId'),
    createdAt: str(o, 'createdAt'),
    deliveries: arr(o['deliveries'], 'deliveries').map((d) => {
      const dob = obj(d, 'delivery');
      return {
        channel: str(dob, 'channel'),
        status: str(dob, 'status'),
        reports: arr(dob['reports'], 'reports').map(String),
        detail: optStr(dob, 'detail'),
        sentAt: optStr(dob, 'sentAt'),
        deliveredAt: optStr(dob, 'deliveredAt'),
        readAt: optStr(dob, 'readAt'),
      };
    }),
  };
}

// ---- the client ----------------------------------------------------------------------------

export interface ApiClientOptions {
  /** The session token to send, or null for the unauthenticated calls. */
  token(): string | null;
  /** Called on any 401 answer (expired or revoked session), before the error is thrown. */
  onUnauthorized(): void;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export class ApiClient {
  constructor(private readonly options: ApiClientOptions) {}

  private async request(method: Method, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' };
    const token = this.options.token();
    if (token !== null) headers['Authorization'] = `Bearer ${token}`;
    // Without a token the browser's session cookie (a sign-in through ESIA) goes instead.
    const credentials: RequestCredentials = token === null ? 'same-origin' : 'omit';
    const init: RequestInit = { method, headers, cache: 'no-store', credentials, referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${API_BASE}${path}`, init);
    } catch {
      throw new NetworkError();
    }
    if (res.status === 204) return null;
    const text = await res.text().catch(() => {
      throw new NetworkError();
    });
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (!res.ok) {
      const p = isObject(parsed) ? parsed : {};
      const code = typeof p['code'] === 'string' ? p['code'] : `http_${res.status}`;
      const detail = typeof p['detail'] === 'string' ? p['detail'] : '';
      if (res.status === 401) this.options.onUnauthorized();
      const retry = Number.parseInt(res.headers.get('retry-after') ?? '', 10);
      throw new ApiProblem(res.status, code, detail, Number.isFinite(retry) ? retry : null);
    }
    if (parsed === null) throw new BadResponse(`empty or non-JSON body (HTTP ${res.status})`);
    return parsed;
  }

  async login(email: string, password: string): Promise<Session> {
    return decodeSession(await this.request('POST', '/auth/login', { email, password }));
  }

  async devLogin(name: string): Promise<Session> {
    return decodeSession(await this.request('POST', '/auth/dev-login', { name }));
  }

  async logout(): Promise<void> {
    await this.request('POST', '/auth/logout');
  }

  async me(): Promise<User | null> {
    return decodeMe(await this.request('GET', '/me'));
  }

  async authOptions(): Promise<AuthOptions> {
    return decodeAuthOptions(await this.request('GET', '/auth/options'));
  }

  /** «Мои данные»; null when the patient did not come through ESIA. */
  async personalData(): Promise<PersonalData | null> {
    try {
      return decodePersonalData(await this.request('GET', '/me/personal-data'));
    } catch (e) {
      if (e instanceof ApiProblem && e.status === 404) return null;
      throw e;
    }
  }

  /** A page of consultations; `filter`: a name to search (patient or doctor), a status, a time range. */
  async consultations(limit: number, offset: number, filter: ListFilter = {}): Promise<Page<Consultation>> {
    const q = new URLSearchParams({ limit: String(limit), offset: String(offset) });
    if (filter.q !== undefined && filter.q.trim().length >= 2) q.set('q', filter.q.trim());
    if (filter.status !== undefined && filter.status !== '') q.set('status', filter.status);
    if (filter.from !== undefined && filter.from !== '') q.set('from', filter.from);
    if (filter.to !== undefined && filter.to !== '') q.set('to', filter.to);
    return decodePage(await this.request('GET', `/consultations?${q}`), decodeConsultation);
  }

  async overdue(limit: number): Promise<Page<Consultation>> {
    const q = new URLSearchParams({ limit: String(limit) });
    return decodePage(await this.request('GET', `/admin/overdue?${q}`), decodeConsultation);
  }

  /** Consultations whose time changed in Bitrix24 under them. */
  async slotConflicts(limit: number): Promise<Page<Consultation>> {
    const q = new URLSearchParams({ limit: String(limit) });
    return decodePage(await this.request('GET', `/admin/slot-conflicts?${q}`), decodeConsultation);
  }

  /** Move a consultation to another free slot of its doctor. */
  async reschedule(id: string, slotId: string): Promise<Consultation> {
    return decodeConsultation(
      await this.request('POST', `/consultations/${encodeURIComponent(id)}/reschedule`, { slotId }),
    );
  }

  /** Refund (part of) a succeeded payment (admins). */
  async refund(paymentId: string, amountKopecks: number, reason: string): Promise<Refund> {
    return decodeRefund(
      await this.request('POST', `/payments/${encodeURIComponent(paymentId)}/refunds`, { amountKopecks, reason }),
    );
  }

  async audit(filter: AuditFilter, limit: number, offset: number): Promise<Page<AuditEntry>> {
    const q = new URLSearchParams({ limit: String(limit), offset: String(offset) });
    for (const [k, v] of Object.entries(filter)) if (typeof v === 'string' && v.trim() !== '') q.set(k, v.trim());
    return decodePage(await this.request('GET', `/audit?${q}`), decodeAudit);
  }

  /** The recordings the caller may see, newest first; `consultationId`: of that one only. */
  async recordings(limit: number, consultationId?: string): Promise<Page<Recording>> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (consultationId !== undefined) q.set('consultationId', consultationId);
    return decodePage(await this.request('GET', `/recordings?${q}`), decodeRecording);
  }

  async downloadLink(id: string): Promise<DownloadLink> {
    return decodeLink(await this.request('POST', `/recordings/${encodeURIComponent(id)}/download`));
  }

  async doctors(): Promise<Doctor[]> {
    return arr(await this.request('GET', '/doctors'), 'doctors').map(decodeDoctor);
  }

  async slots(doctorId: string): Promise<Slot[]> {
    return arr(await this.request('GET', `/doctors/${encodeURIComponent(doctorId)}/slots`), 'slots').map(decodeSlot);
  }

  async book(slotId: string): Promise<Consultation> {
    return decodeConsultation(await this.request('POST', '/consultations', { slotId }));
  }

  async join(id: string): Promise<JoinLink> {
    return decodeJoin(await this.request('POST', `/consultations/${encodeURIComponent(id)}/join`));
  }

  /** The clinic marks a booking paid (paid at the desk, or by invoice). */
  async markPaid(id: string): Promise<Consultation> {
    return decodeConsultation(await this.request('POST', `/consultations/${encodeURIComponent(id)}/payment`, {}));
  }

  async cancel(id: string, reason: string): Promise<Consultation> {
    return decodeConsultation(
      await this.request('POST', `/consultations/${encodeURIComponent(id)}/cancel`, { reason }),
    );
  }

  async consultation(id: string): Promise<Consultation> {
    return decodeConsultation(await this.request('GET', `/consultations/${encodeURIComponent(id)}`));
  }

  /** The payment to pay (made now if needed); `email` for the receipt when none is on file. */
  async checkout(id: string, email?: string): Promise<Payment> {
    const body = email === undefined ? {} : { email };
    return decodePayment(await this.request('POST', `/consultations/${encodeURIComponent(id)}/checkout`, body));
  }

  /** Every payment attempt of a consultation, oldest first. */
  async payments(id: string): Promise<Payment[]> {
    return arr(await this.request('GET', `/consultations/${encodeURIComponent(id)}/payments`), 'payments').map(
      decodePayment,
    );
  }

  /** The patient's questionnaires, the newest consultation first. */
  async myQuestionnaires(): Promise<Questionnaire[]> {
    return decodeQuestionnaires(await this.request('GET', '/me/questionnaires'));
  }

  /** A consultation's questionnaires (the doctor's read of submitted answers is recorded). */
  /** The consultation's chat, oldest first (up to 200 at a time: read on after the last). */
  async chatOf(consultationId: string, after = 0): Promise<{ items: ChatEntry[]; last: number }> {
    const o = obj(
      await this.request('GET', `/consultations/${encodeURIComponent(consultationId)}/messages?after=${after}`),
      'chat page',
    );
    return { items: arr(o['items'], 'chat messages').map(decodeChatEntry), last: num(o, 'last') };
  }

  /** A file of the consultation's chat. */
  async chatFile(consultationId: string, messageId: string): Promise<Blob> {
    const headers: Record<string, string> = {};
    const token = this.options.token();
    if (token !== null) headers['Authorization'] = `Bearer ${token}`;
    let res: Response;
    try {
      res = await fetch(
        `${API_BASE}/consultations/${encodeURIComponent(consultationId)}/files/${encodeURIComponent(messageId)}`,
        { headers, cache: 'no-store', credentials: token === null ? 'same-origin' : 'omit', referrerPolicy: 'no-referrer' },
      );
    } catch {
      throw new NetworkError();
    }
    if (!res.ok) {
      if (res.status === 401) this.options.onUnauthorized();
      throw new ApiProblem(res.status, `http_${res.status}`, '', null);
    }
    return res.blob();
  }

  async questionnairesOf(consultationId: string): Promise<Questionnaire[]> {
    return decodeQuestionnaires(
      await this.request('GET', `/consultations/${encodeURIComponent(consultationId)}/questionnaires`),
    );
  }

  async assignQuestionnaire(consultationId: string, kind: QuestionnaireKind): Promise<Questionnaire> {
    return decodeQuestionnaire(
      await this.request('POST', `/consultations/${encodeURIComponent(consultationId)}/questionnaires`, { kind }),
    );
  }

  /** Save a draft, or submit (every required question answered). */
  async saveQuestionnaire(id: string, answers: Record<string, Answer>, submit: boolean): Promise<Questionnaire> {
    return decodeQuestionnaire(
      await this.request('PUT', `/questionnaires/${encodeURIComponent(id)}`, { answers, submit }),
    );
  }

  async myDeletionRequests(): Promise<DeletionRequest[]> {
    return decodePage(await this.request('GET', '/me/deletion-requests?limit=20'), decodeDeletionRequest).items;
  }

  async requestDeletion(comment: string): Promise<DeletionRequest> {
    const body = comment === '' ? {} : { comment };
    return decodeDeletionRequest(await this.request('POST', '/me/deletion-requests', body));
  }

  /** The clinic's list: pending first, the nearest deadline first. */
  async deletionRequests(limit: number): Promise<Page<DeletionRequest>> {
    const q = new URLSearchParams({ limit: String(limit) });
    return decodePage(await this.request('GET', `/admin/deletion-requests?${q}`), decodeDeletionRequest);
  }

  async answerDeletion(id: string, outcome: 'done' | 'refused', reason: string): Promise<DeletionRequest> {
    const body = reason === '' ? { outcome } : { outcome, reason };
    return decodeDeletionRequest(
      await this.request('POST', `/admin/deletion-requests/${encodeURIComponent(id)}/answer`, body),
    );
  }

  async extendDeletion(id: string, reason: string): Promise<DeletionRequest> {
    return decodeDeletionRequest(
      await this.request('POST', `/admin/deletion-requests/${encodeURIComponent(id)}/extend`, { reason }),
    );
  }

  /** The caller's notification channels (404 when the clinic sends no notifications). */
  async myChannels(): Promise<MyChannels> {
    return decodeMyChannels(await this.request('GET', '/me/notifications'));
  }

  /** Choose the channels in order; null: the clinic's order. */
  async chooseChannels(channels: Channel[] | null): Promise<MyChannels> {
    return decodeMyChannels(await this.request('PUT', '/me/notifications', { channels }));
  }

  /** A deep link to the clinic's MAX bot that links the caller's account. */
  async linkMax(): Promise<{ url: string; expiresAt: string }> {
    const o = obj(await this.request('POST', '/me/notifications/max', {}), 'link');
    return { url: str(o, 'url'), expiresAt: str(o, 'expiresAt') };
  }

  async unlinkMax(): Promise<MyChannels> {
    return decodeMyChannels(await this.request('DELETE', '/me/notifications/max'));
  }

  /** The clinic's notification log, newest first; of one consultation if given. */
  async notices(consultationId: string | null, limit: number): Promise<Page<Notice>> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (consultationId !== null) q.set('consultationId', consultationId);
    return decodePage(await this.request('GET', `/admin/notifications?${q}`), decodeNotice);
  }

  async complete(id: string, conclusion: string): Promise<Consultation> {
    return decodeConsultation(
      await this.request('POST', `/consultations/${encodeURIComponent(id)}/complete`, { conclusion }),
    );
  }
}
