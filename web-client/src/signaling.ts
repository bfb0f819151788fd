/**
 * One WebSocket to the Vizit server's `/ws`, speaking docs/signaling.md.
 *
 * A SignalingClient lives for one socket: a reconnect makes a new one. It keeps the socket alive
 * (the server closes a socket that has been quiet for 30 s and never pings on its own) and reports
 * a socket that closes, fails to open, or stops answering pings as lost, unless close() was called.
 */

import { decodeServerMessage, type ClientMessage, type ServerMessage } from './protocol';

const PING_INTERVAL_MS = 10_000;
/** Two pings without any frame back: the TCP connection is half-open (e.g. a phone changed network). */
const SILENCE_LIMIT_MS = 25_000;
/** A WebSocket to an unreachable host can hang in CONNECTING for minutes. */
const OPEN_TIMEOUT_MS = 10_000;

export interface SignalingEvents {
  /** The socket is open: send `join`. */
  onOpen(): void;
  onMessage(message: ServerMessage): void;
  /** The socket is gone and close() was not called. Called at most once. */
  onLost(reason: string): void;
}

/** `ws(s)://<this host>/ws`, secure exactly when the page is. */
export function signalingUrl(loc: Location = window.location): string {
  const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${loc.host}/ws`;
}

/** Ping nonces increase across sockets so a late pong from an old socket cannot be mistaken. */
let nextNonce = 1;

export class SignalingClient {
  private readonly ws: WebSocket;
  private done = false;
  private lastHeard = Date.now();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private openTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(url: string, private readonly events: SignalingEvents) {
    this.ws = new WebSocket(url);
    this.openTimer = setTimeout(() => this.lost('the socket did not open in time'), OPEN_TIMEOUT_MS);
    this.ws.onopen = () => {
      clearTimeout(this.openTimer);
      this.lastHeard = Date.now();
      this.pingTimer = setInterval(() => this.keepAlive(), PING_INTERVAL_MS);
      this.events.onOpen();
    };
    this.ws.onmessage = (ev: MessageEvent) => {
      if (this.done) return;
      this.lastHeard = Date.now();
      if (typeof ev.data !== 'string') {
        console.warn('vizit: ignoring a binary signaling frame');
        return;
      }
      const decoded = decodeServerMessage(ev.data);
      if (!decoded.ok) {
        // Unknown types may come from a newer server: skip them rather than drop the call.
        console.warn(`vizit: ignoring a signaling frame (${decoded.reason})`);
        return;
      }
      this.events.onMessage(decoded.message);
    };
    this.ws.onclose = (ev: CloseEvent) => {
      this.lost(`the socket closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`);
    };
    // onerror is always followed by onclose, which carries more detail.
    this.ws.onerror = () => {};
  }

  /** Send one message; false if the socket is not open (the message is dropped). */
  send(message: ClientMessage): boolean {
    if (this.done || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /**
   * Close on purpose: no onLost follows. Frames already passed to send() still go out before the
   * close frame, so `send(leave); close()` delivers the leave.
   */
  close(): void {
    if (this.done) return;
    this.stop();
    this.ws.close(1000);
  }

  private keepAlive(): void {
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.lost('the server stopped answering pings');
      return;
    }
    this.send({ type: 'ping', nonce: nextNonce++ });
  }

  private lost(reason: string): void {
    if (this.done) return;
    this.stop();
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
    }
    this.events.onLost(reason);
  }

  private stop(): void {
    this.done = true;
    clearTimeout(this.openTimer);
    clearInterval(this.pingTimer);
  }
}
