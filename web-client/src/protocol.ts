/**
 * Wire types of the Vizit signaling protocol, version 1 (docs/signaling.md), and a decoder that
 * turns an incoming frame into a typed {@link ServerMessage} or rejects it.
 *
 * The decoder checks only the fields this client reads: the protocol says unknown fields are
 * ignored, so a newer server may send more.
 */

export const PROTOCOL_VERSION = 1;

export type TrackKind = 'audio' | 'video';

/** How well a link carries the call, as its own page judges it. */
export type NetworkQuality = 'good' | 'fair' | 'poor';

/** `doctor` or `patient` today; kept open so a new role on the server does not break old pages. */
export type Role = string;

export interface Participant {
  participantId: string;
  role: Role;
  name: string;
  audioMuted: boolean;
  videoMuted: boolean;
  /** Shows its screen: a second video track besides the camera's. */
  screenSharing: boolean;
  /** Its link, as its page last said; null until it did (or a level this page does not know). */
  quality: NetworkQuality | null;
  /** Its link cannot carry video: it sends none and gets none. */
  audioOnly: boolean;
}

export type LeaveReason =
  | 'hangup'
  | 'connectionLost'
  | 'replaced'
  | 'serverShutdown'
  | 'callEnded';

export type ErrorCode =
  | 'badMessage'
  | 'unknownType'
  | 'tooLarge'
  | 'unsupportedVersion'
  | 'tokenExpired'
  | 'tokenInvalid'
  | 'roomFull'
  | 'notJoined'
  | 'alreadyJoined'
  | 'badSdp'
  | 'noPendingOffer'
  | 'connectionLost'
  | 'replaced'
  | 'serverShutdown'
  | 'recordingRefused'
  | 'joinTimeout'
  | 'tooManyMessages'
  | 'tooManyCandidates'
  | 'callUnavailable'
  | 'resumeFailed'
  | 'forbidden'
  | 'notWaiting'
  | 'inWaitingRoom'
  | 'internal';

// ---- client → server -------------------------------------------------------------------------

export type ClientMessage =
  | { type: 'join'; version: number; token: string }
  | { type: 'resume'; version: number; token: string; resumeToken: string }
  | { type: 'offer'; sdp: string }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: string; sdpMid?: string }
  | { type: 'mute'; kind: TrackKind; muted: boolean }
  | { type: 'ping'; nonce: number }
  | { type: 'recordingConsent'; consent: boolean }
  | { type: 'recording'; action: 'start' | 'stop' }
  | { type: 'admit'; participantId: string }
  | { type: 'screenShare'; sharing: boolean }
  | { type: 'quality'; level: NetworkQuality }
  | { type: 'audioOnly'; on: boolean }
  | { type: 'leave' };

// ---- server → client -------------------------------------------------------------------------

export interface JoinedMessage {
  type: 'joined';
  version: number;
  participantId: string;
  room: string;
  role: Role;
  name: string;
  participants: Participant[];
  /** Takes the session to a new socket if this one is lost (empty from an older server). */
  resumeToken: string;
  resumeGraceMs: number;
  /** TURN servers with this join's credentials (empty without TURN). */
  iceServers: IceServer[];
}

/** An `RTCIceServer` as the server gives it. */
export interface IceServer {
  urls: string[];
  username: string;
  credential: string;
}

/** Where the Room's recording stands (docs/signaling.md `recording`). */
export interface RecordingMessage {
  type: 'recording';
  /** `off` (the clinic does not record), `auto` or `doctor`; open like Role. */
  mode: string;
  /** `off`, `awaitingConsent`, `awaitingStart`, `recording` or `paused`. */
  state: string;
  consented: string[];
  /** Who said no (declined, or withdrew) and has not consented since. */
  declined: string[];
}

/** Someone in the waiting room, as the doctor sees them. */
export interface Waiter {
  participantId: string;
  name: string;
  /** When they started waiting, Unix milliseconds. */
  since: number;
}

/** A track is sent in a codec its receiver did not accept (told to both). */
export interface CodecMismatchMessage {
  type: 'codecMismatch';
  kind: TrackKind;
  sender: string;
  receiver: string;
  codec: string;
  receiverAccepts: string[];
}

export type ServerMessage =
  | JoinedMessage
  | { type: 'answer'; sdp: string }
  | { type: 'offer'; sdp: string }
  | { type: 'participantJoined'; participant: Participant }
  // `reason` is a LeaveReason; typed open like Role so an unknown one is not a decode error.
  | { type: 'participantLeft'; participantId: string; reason: string }
  | { type: 'muteChanged'; participantId: string; kind: TrackKind; muted: boolean }
  | { type: 'screenShareChanged'; participantId: string; sharing: boolean }
  | { type: 'qualityChanged'; participantId: string; level: NetworkQuality | null }
  | { type: 'audioOnlyChanged'; participantId: string; on: boolean }
  | { type: 'pong'; nonce: number }
  | { type: 'roomClosed'; reason: string }
  | CodecMismatchMessage
  | { type: 'resumed'; participantId: string; resumeToken: string; resumeGraceMs: number }
  /** Our join waits for the doctor; `startsAt` (Unix ms) is when the consultation is booked. */
  | { type: 'waitingRoom'; startsAt: number | null }
  /** To the doctor: who waits now. */
  | { type: 'waiting'; participants: Waiter[] }
  | RecordingMessage
  // `code` is an ErrorCode, typed open for the same reason.
  | { type: 'error'; code: string; message: string };

// ---- decoding --------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new TypeError(`field "${key}" is not a string`);
  return v;
}

/** An array of strings; absent, an empty one. */
function strings(o: Json, key: string): string[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw new TypeError(`${key} is not an array of strings`);
  }
  return v as string[];
}

function num(o: Json, key: string): number {
  const v = o[key];
  if (typeof v !== 'number') throw new TypeError(`field "${key}" is not a number`);
  return v;
}

function bool(o: Json, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new TypeError(`field "${key}" is not a boolean`);
  return v;
}

/** Optional string: a missing field reads as `fallback`. */
function optStr(o: Json, key: string, fallback: string): string {
  return o[key] === undefined ? fallback : str(o, key);
}

function kind(o: Json): TrackKind {
  const k = str(o, 'kind');
  if (k !== 'audio' && k !== 'video') throw new TypeError(`unknown track kind "${k}"`);
  return k;
}

function participant(v: unknown): Participant {
  if (!isObject(v)) throw new TypeError('participant is not an object');
  return {
    participantId: str(v, 'participantId'),
    role: optStr(v, 'role', ''),
    name: optStr(v, 'name', ''),
    // A server that leaves the mute flags out means "not muted".
    audioMuted: v['audioMuted'] === undefined ? false : bool(v, 'audioMuted'),
    videoMuted: v['videoMuted'] === undefined ? false : bool(v, 'videoMuted'),
    screenSharing: v['screenSharing'] === undefined ? false : bool(v, 'screenSharing'),
    quality: quality(v['quality']),
    audioOnly: v['audioOnly'] === undefined ? false : bool(v, 'audioOnly'),
  };
}

/** A level of network quality; anything else (absent, or from a newer server) reads as unknown. */
function quality(v: unknown): NetworkQuality | null {
  return v === 'good' || v === 'fair' || v === 'poor' ? v : null;
}

function iceServers(v: unknown): IceServer[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new TypeError('iceServers is not an array');
  return v.map((s: unknown) => {
    if (!isObject(s)) throw new TypeError('an ICE server is not an object');
    const urls = s['urls'];
    if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) {
      throw new TypeError('an ICE server has no urls');
    }
    return { urls: urls as string[], username: str(s, 'username'), credential: str(s, 'credential') };
  });
}

export type Decoded =
  | { ok: true; message: ServerMessage }
  | { ok: false; reason: string };

/** Decode one text frame from the server. Never throws. */
export function decodeServerMessage(text: string): Decoded {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isObject(raw)) return { ok: false, reason: 'not a JSON object' };
  try {
    const type = str(raw, 'type');
    switch (type) {
      case 'joined': {
        const list = raw['participants'] ?? [];
        if (!Array.isArray(list)) throw new TypeError('participants is not an array');
        return {
          ok: true,
          message: {
            type,
            version: num(raw, 'version'),
            participantId: str(raw, 'participantId'),
            room: optStr(raw, 'room', ''),
            role: optStr(raw, 'role', ''),
            name: optStr(raw, 'name', ''),
            participants: list.map(participant),
            resumeToken: optStr(raw, 'resumeToken', ''),
            resumeGraceMs: typeof raw['resumeGraceMs'] === 'number' ? raw['resumeGraceMs'] : 0,
            iceServers: iceServers(raw['iceServers']),
          },
        };
      }
      case 'resumed':
        return {
          ok: true,
          message: {
            type,
            participantId: str(raw, 'participantId'),
            resumeToken: str(raw, 'resumeToken'),
            resumeGraceMs: num(raw, 'resumeGraceMs'),
          },
        };
      case 'answer':
      case 'offer':
        return { ok: true, message: { type, sdp: str(raw, 'sdp') } };
      case 'participantJoined':
        return { ok: true, message: { type, participant: participant(raw['participant']) } };
      case 'participantLeft':
        return {
          ok: true,
          message: { type, participantId: str(raw, 'participantId'), reason: optStr(raw, 'reason', 'hangup') },
        };
      case 'muteChanged':
        return {
          ok: true,
          message: { type, participantId: str(raw, 'participantId'), kind: kind(raw), muted: bool(raw, 'muted') },
        };
      case 'qualityChanged':
        return { ok: true, message: { type, participantId: str(raw, 'participantId'), level: quality(raw['level']) } };
      case 'screenShareChanged':
        return { ok: true, message: { type, participantId: str(raw, 'participantId'), sharing: bool(raw, 'sharing') } };
      case 'audioOnlyChanged':
        return { ok: true, message: { type, participantId: str(raw, 'participantId'), on: bool(raw, 'on') } };
      case 'pong':
        return { ok: true, message: { type, nonce: num(raw, 'nonce') } };
      case 'roomClosed':
        return { ok: true, message: { type, reason: optStr(raw, 'reason', '') } };
      case 'recording':
        return {
          ok: true,
          message: {
            type,
            mode: str(raw, 'mode'),
            state: str(raw, 'state'),
            consented: strings(raw, 'consented'),
            declined: raw['declined'] === undefined ? [] : strings(raw, 'declined'),
          },
        };
      case 'codecMismatch':
        return {
          ok: true,
          message: {
            type,
            kind: kind(raw),
            sender: str(raw, 'sender'),
            receiver: str(raw, 'receiver'),
            codec: str(raw, 'codec'),
            receiverAccepts: strings(raw, 'receiverAccepts'),
          },
        };
      case 'waitingRoom':
        return {
          ok: true,
          message: { type, startsAt: raw['startsAt'] === undefined ? null : num(raw, 'startsAt') },
        };
      case 'waiting': {
        const list = raw['participants'];
        if (!Array.isArray(list)) throw new TypeError('participants is not an array');
        return {
          ok: true,
          message: {
            type,
            participants: list.map((w: unknown) => {
              if (!isObject(w)) throw new TypeError('a waiting participant is not an object');
              return { participantId: str(w, 'participantId'), name: optStr(w, 'name', ''), since: num(w, 'since') };
            }),
          },
        };
      }
      case 'error':
        return { ok: true, message: { type, code: str(raw, 'code'), message: optStr(raw, 'message', '') } };
      default:
        return { ok: false, reason: `unknown type "${type}"` };
    }
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Error codes after which the server closes the socket and a retry cannot help: the same token
 * would be refused again, or another tab now owns the session.
 */
export const FATAL_NO_RETRY: ReadonlySet<string> = new Set<ErrorCode>([
  'tokenExpired',
  'tokenInvalid',
  'roomFull',
  'unsupportedVersion',
  'replaced',
  'callUnavailable',
]);

/**
 * Error codes after which the server closes the socket but a new join may well succeed: the media
 * path dropped, or the server is restarting or overloaded.
 */
export const FATAL_RETRY: ReadonlySet<string> = new Set<ErrorCode>([
  'connectionLost',
  // A message too large for the server (an SDP grown by some browser's renegotiations): a new
  // session starts with a small one.
  'tooLarge',
  'serverShutdown',
  'joinTimeout',
  'tooManyMessages',
  'internal',
]);
