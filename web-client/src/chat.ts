/**
 * The call's chat (`docs/chat.md`): messages and files between the patient and the doctor,
 * spoken with the join token. New messages come by a long poll from the last one seen, so a
 * reload (or a lost answer) loses nothing; a message is sent with its own client id, so a
 * resend after a failure never posts it twice. Everything the other side wrote is shown as
 * text (`textContent`), never as markup; files are fetched with the token and handed to the
 * browser as `blob:` URLs.
 */

import { CHAT_TEXT, fileSize } from './messages';
import { byTestId } from './ui';

const API = '/api/v1/call';
/** The server holds a read this long when nothing new comes. */
const WAIT_SECONDS = 25;
/** Waits between failed reads: growing, capped. */
const BACKOFF_MS = [1_000, 2_000, 5_000, 10_000];
/** What the file picker offers (the server checks the bytes anyway). */
export const ACCEPT = 'image/jpeg,image/png,image/webp,image/heic,image/heif,application/pdf,.heic,.heif';

export interface ChatFile {
  name: string;
  contentType: string;
  sizeBytes: number;
}

export interface ChatMessage {
  id: string;
  seq: number;
  clientId: string;
  senderRole: 'patient' | 'doctor';
  senderName: string;
  mine: boolean;
  text: string | null;
  file: ChatFile | null;
  conclusion: boolean;
  createdAt: string;
}

interface Problem {
  status: number;
  code: string;
  detail: string;
}

class ChatError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

function clientId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A message on its way: shown at once, marked until the server has it. */
interface Pending {
  clientId: string;
  text: string | null;
  file: File | null;
  conclusion: boolean;
  item: HTMLLIElement;
  failed: boolean;
}

export class CallChat {
  private readonly panel: HTMLElement;
  private readonly toggle: HTMLButtonElement;
  private readonly badge: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly empty: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly input: HTMLTextAreaElement;
  private readonly fileInput: HTMLInputElement;
  private readonly conclusionBox: HTMLInputElement;
  private readonly conclusionRow: HTMLElement;
  private readonly error: HTMLElement;
  private readonly closeButton: HTMLButtonElement;
  private last = 0;
  private unread = 0;
  /** The history is on screen: what comes now is new. */
  private loaded = false;
  private stopped = false;
  private abort: AbortController | null = null;
  private readonly shown = new Map<string, HTMLLIElement>();
  private readonly pending = new Map<string, Pending>();
  private readonly blobs: string[] = [];

  constructor(
    private readonly token: string,
    isDoctor: boolean,
    root: Document = document,
  ) {
    this.panel = byTestId(root, 'chat', HTMLElement);
    this.toggle = byTestId(root, 'toggle-chat', HTMLButtonElement);
    this.badge = byTestId(root, 'chat-unread', HTMLElement);
    this.list = byTestId(root, 'chat-list', HTMLOListElement);
    this.empty = byTestId(root, 'chat-empty', HTMLElement);
    this.form = byTestId(root, 'chat-form', HTMLFormElement);
    this.input = byTestId(root, 'chat-input', HTMLTextAreaElement);
    this.fileInput = byTestId(root, 'chat-file', HTMLInputElement);
    this.conclusionBox = byTestId(root, 'chat-conclusion', HTMLInputElement);
    this.conclusionRow = this.conclusionBox.closest('label') ?? this.conclusionBox;
    this.error = byTestId(root, 'chat-error', HTMLElement);
    this.closeButton = byTestId(root, 'chat-close', HTMLButtonElement);
    this.fileInput.accept = ACCEPT;
    this.conclusionRow.hidden = !isDoctor;

    this.toggle.addEventListener('click', () => this.setOpen(this.panel.hidden !== false));
    this.closeButton.addEventListener('click', () => this.setOpen(false));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.sendText();
    });
    this.input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter is a new line (as in messengers).
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendText();
      }
    });
    this.fileInput.addEventListener('change', () => {
      const file = this.fileInput.files?.[0];
      this.fileInput.value = '';
      if (file !== undefined) this.sendFile(file);
    });
  }

  /** Show the chat button and start reading. A room that is not a consultation has no chat. */
  start(): void {
    void this.readLoop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    for (const url of this.blobs) URL.revokeObjectURL(url);
  }

  private setOpen(open: boolean): void {
    this.panel.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    if (open) {
      this.unread = 0;
      this.renderBadge();
      this.list.lastElementChild?.scrollIntoView({ block: 'end' });
      this.input.focus();
    } else {
      this.toggle.focus();
    }
  }

  private renderBadge(): void {
    this.badge.hidden = this.unread === 0;
    this.badge.textContent = this.unread > 9 ? '9+' : String(this.unread);
    this.toggle.setAttribute(
      'aria-label',
      this.unread === 0 ? CHAT_TEXT.open : `${CHAT_TEXT.open} (${CHAT_TEXT.unread(this.unread)})`,
    );
  }

  private async call(method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    const res = await fetch(`${API}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...headers },
      body: body ?? null,
      signal: signal ?? null,
      cache: 'no-store',
    });
    if (!res.ok) {
      let problem: Partial<Problem> = {};
      try {
        problem = (await res.json()) as Partial<Problem>;
      } catch {
        // Not a problem document (a proxy's page): the status says enough.
      }
      throw new ChatError(res.status, problem.code ?? 'http', problem.detail ?? res.statusText);
    }
    return res;
  }

  private async readLoop(): Promise<void> {
    let failures = 0;
    let first = true;
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const wait = first ? 0 : WAIT_SECONDS;
        const res = await this.call('GET', `/messages?after=${this.last}&waitSeconds=${wait}`, undefined, {}, this.abort.signal);
        const page = (await res.json()) as { items: ChatMessage[]; last: number };
        if (first) this.toggle.hidden = false;
        first = false;
        failures = 0;
        for (const m of page.items) this.show(m);
        this.last = Math.max(this.last, page.last);
        this.loaded = true;
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof ChatError && e.status === 404 && first) {
          // Not a consultation's call (a test room): no chat here.
          return;
        }
        if (e instanceof ChatError && (e.status === 401 || e.status === 403)) {
          // The link expired or the consultation closed: the history stays on screen.
          this.setError(CHAT_TEXT.closed);
          this.form.hidden = true;
          return;
        }
        const delay = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)] ?? 10_000;
        failures += 1;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private setError(text: string | null): void {
    this.error.textContent = text ?? '';
    this.error.hidden = text === null;
  }

  private sendText(): void {
    const text = this.input.value.trim();
    if (text === '') return;
    this.input.value = '';
    const p: Pending = { clientId: clientId(), text, file: null, conclusion: false, item: document.createElement('li'), failed: false };
    this.queue(p);
  }

  private sendFile(file: File): void {
    const conclusion = !this.conclusionRow.hidden && this.conclusionBox.checked;
    this.conclusionBox.checked = false;
    const p: Pending = { clientId: clientId(), text: null, file, conclusion, item: document.createElement('li'), failed: false };
    this.queue(p);
  }

  private queue(p: Pending): void {
    this.pending.set(p.clientId, p);
    this.renderPending(p);
    this.list.append(p.item);
    this.empty.hidden = true;
    p.item.scrollIntoView({ block: 'end' });
    void this.post(p);
  }

  private renderPending(p: Pending): void {
    const item = p.item;
    item.className = 'chat-item mine';
    item.dataset['testid'] = 'chat-message';
    item.dataset['state'] = p.failed ? 'failed' : 'sending';
    item.replaceChildren();
    if (p.text !== null) item.append(this.bubbleText(p.text));
    if (p.file !== null) item.append(this.fileLine({ name: p.file.name, contentType: p.file.type, sizeBytes: p.file.size }, null, p.conclusion));
    const meta = document.createElement('span');
    meta.className = 'chat-meta';
    meta.textContent = p.failed ? CHAT_TEXT.failed : CHAT_TEXT.sending;
    item.append(meta);
    if (p.failed) {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'link-button';
      retry.textContent = CHAT_TEXT.retry;
      retry.addEventListener('click', () => {
        p.failed = false;
        this.renderPending(p);
        void this.post(p);
      });
      item.append(retry);
    }
  }

  private async post(p: Pending): Promise<void> {
    this.setError(null);
    try {
      let res: Response;
      if (p.file !== null) {
        const q = new URLSearchParams({ name: p.file.name, clientId: p.clientId, conclusion: String(p.conclusion) });
        res = await this.call('POST', `/files?${q.toString()}`, p.file, { 'content-type': 'application/octet-stream' });
      } else {
        res = await this.call('POST', '/messages', JSON.stringify({ text: p.text, clientId: p.clientId }), {
          'content-type': 'application/json',
        });
      }
      const m = (await res.json()) as ChatMessage;
      this.pending.delete(p.clientId);
      p.item.remove();
      this.show(m);
    } catch (e) {
      if (e instanceof ChatError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
        // Refused for good (a file of the wrong type, too large): say why, keep nothing.
        this.pending.delete(p.clientId);
        p.item.remove();
        this.setError(CHAT_TEXT.refused(e.code, e.message));
        if (this.list.children.length === 0) this.empty.hidden = false;
        return;
      }
      if (e instanceof ChatError && e.status === 429) this.setError(CHAT_TEXT.flood);
      p.failed = true;
      this.renderPending(p);
    }
  }

  private bubbleText(text: string): HTMLElement {
    const t = document.createElement('p');
    t.className = 'chat-text';
    t.textContent = text;
    return t;
  }

  private fileLine(file: ChatFile, messageId: string | null, conclusion: boolean): HTMLElement {
    const box = document.createElement('div');
    box.className = 'chat-file';
    if (conclusion) {
      const tag = document.createElement('span');
      tag.className = 'chat-tag';
      tag.textContent = CHAT_TEXT.conclusion;
      box.append(tag);
    }
    const name = document.createElement('span');
    name.className = 'chat-file-name';
    name.textContent = file.name;
    const size = document.createElement('span');
    size.className = 'chat-file-size';
    size.textContent = fileSize(file.sizeBytes);
    box.append(name, size);
    if (messageId !== null) {
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'link-button';
      open.dataset['testid'] = 'chat-download';
      open.textContent = CHAT_TEXT.download;
      open.setAttribute('aria-label', `${CHAT_TEXT.download}: ${file.name}`);
      open.addEventListener('click', () => void this.download(messageId, file.name, open));
      box.append(open);
      if (file.contentType === 'image/jpeg' || file.contentType === 'image/png' || file.contentType === 'image/webp') {
        void this.preview(messageId, file.name, box);
      }
    }
    return box;
  }

  private async fetchFile(messageId: string): Promise<string> {
    const res = await this.call('GET', `/files/${encodeURIComponent(messageId)}`);
    const url = URL.createObjectURL(await res.blob());
    this.blobs.push(url);
    return url;
  }

  private async preview(messageId: string, name: string, box: HTMLElement): Promise<void> {
    try {
      const img = document.createElement('img');
      img.className = 'chat-image';
      img.alt = name;
      img.dataset['testid'] = 'chat-image';
      img.src = await this.fetchFile(messageId);
      box.prepend(img);
    } catch {
      // The name and the download button are there still.
    }
  }

  private async download(messageId: string, name: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      const a = document.createElement('a');
      a.href = await this.fetchFile(messageId);
      a.download = name;
      a.rel = 'noopener';
      document.body.append(a);
      a.click();
      a.remove();
    } catch {
      this.setError(CHAT_TEXT.downloadFailed);
    } finally {
      button.disabled = false;
    }
  }

  private show(m: ChatMessage): void {
    if (this.shown.has(m.id)) return;
    // My own message that came back through the read before the post's answer.
    const mine = this.pending.get(m.clientId);
    if (m.mine && mine !== undefined) {
      this.pending.delete(m.clientId);
      mine.item.remove();
    }
    const item = document.createElement('li');
    item.className = m.mine ? 'chat-item mine' : 'chat-item';
    item.dataset['testid'] = 'chat-message';
    item.dataset['state'] = 'sent';
    item.dataset['seq'] = String(m.seq);
    const who = document.createElement('span');
    who.className = 'chat-who';
    who.textContent = m.mine ? CHAT_TEXT.me : m.senderName || CHAT_TEXT.role(m.senderRole);
    item.append(who);
    if (m.text !== null) item.append(this.bubbleText(m.text));
    if (m.file !== null) item.append(this.fileLine(m.file, m.id, m.conclusion));
    const meta = document.createElement('time');
    meta.className = 'chat-meta';
    meta.dateTime = m.createdAt;
    meta.textContent = new Date(m.createdAt).toLocaleTimeString('ru-RU', { hour: '2-digit', minute: '2-digit' });
    item.append(meta);
    // In order of seq, whatever order they arrived in.
    const next = [...this.shown.values()].find((el) => Number(el.dataset['seq']) > m.seq);
    if (next !== undefined) this.list.insertBefore(item, next);
    else {
      const firstPending = [...this.pending.values()][0]?.item;
      if (firstPending !== undefined && firstPending.parentElement === this.list) this.list.insertBefore(item, firstPending);
      else this.list.append(item);
    }
    this.shown.set(m.id, item);
    this.empty.hidden = true;
    if (!m.mine && this.panel.hidden && this.loaded) {
      this.unread += 1;
      this.renderBadge();
    }
    if (!this.panel.hidden) item.scrollIntoView({ block: 'end' });
  }
}
