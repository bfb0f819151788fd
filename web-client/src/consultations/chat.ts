/**
 * The consultation's chat on the consultations page (`docs/chat.md`): what the patient and the
 * doctor wrote and sent during the call, read afterwards — by them and by head doctors. Files
 * are fetched with the session and handed to the browser as `blob:` downloads.
 */

import type { ApiClient, ChatEntry, Consultation, Role } from './api';
import { disclosure, h } from './dom';
import { size } from './texts';

/** What the page gives this module. */
export interface ChatHost {
  api: ApiClient;
  generation(): number;
  logFailure(what: string, e: unknown): void;
}

let host: ChatHost | null = null;
/** Consultations whose chat panel is open: a re-render keeps it open. */
const openPanels = new Set<string>();

export function initChat(h0: ChatHost): void {
  host = h0;
}

/** Whether `role` reads the chat of `c` here. */
export function hasChat(c: Consultation, role: Role): boolean {
  const reader = role === 'patient' || role === 'doctor' || role === 'head_doctor';
  return reader && (c.status === 'paid' || c.status === 'in_progress' || c.status === 'completed');
}

/** The «Переписка» button and its panel. */
export function chatPanel(c: Consultation, titleId: string): [HTMLButtonElement, HTMLElement] {
  return disclosure({
    key: c.id,
    text: 'Переписка',
    testid: 'show-chat',
    panelTestid: 'chat-panel',
    panelClass: 'c-documents',
    describedBy: titleId,
    open: openPanels,
    fill: (panel) => void fill(c, panel),
  });
}

async function fill(c: Consultation, panel: HTMLElement): Promise<void> {
  if (host === null) return;
  const gen = host.generation();
  panel.setAttribute('aria-busy', 'true');
  try {
    const items: ChatEntry[] = [];
    let after = 0;
    for (;;) {
      const page = await host.api.chatOf(c.id, after);
      items.push(...page.items);
      if (page.items.length === 0 || page.last === after) break;
      after = page.last;
    }
    if (gen !== host.generation()) return;
    if (items.length === 0) {
      panel.replaceChildren(h('p', { class: 'empty', text: 'Сообщений и файлов нет.' }));
      return;
    }
    const list = h('ol', { class: 'c-chat', attrs: { 'aria-label': 'Переписка' } });
    for (const m of items) list.append(entry(c, m));
    panel.replaceChildren(list);
  } catch (e) {
    host.logFailure('the chat', e);
    panel.replaceChildren(h('p', { class: 'form-error', attrs: { role: 'alert' }, text: 'Не удалось загрузить переписку. Попробуйте ещё раз.' }));
  } finally {
    panel.removeAttribute('aria-busy');
  }
}

function entry(c: Consultation, m: ChatEntry): HTMLLIElement {
  const who = m.mine ? 'Вы' : m.senderName || (m.senderRole === 'doctor' ? 'Врач' : 'Пациент');
  const when = new Date(m.createdAt).toLocaleString('ru-RU', { day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
  const li = h(
    'li',
    { class: 'c-chat-item', testid: 'chat-entry' },
    h('p', { class: 'c-label' }, h('span', { text: who }), ' · ', h('time', { text: when, attrs: { datetime: m.createdAt } })),
  );
  if (m.text !== null) li.append(h('p', { class: 'c-text', text: m.text }));
  const file = m.file;
  if (file !== null) {
    const line = h('p', { class: 'c-text' });
    if (m.conclusion) line.append(h('span', { class: 'chat-tag', text: 'Заключение' }), ' ');
    const button = h('button', {
      class: 'link-button',
      testid: 'chat-entry-download',
      text: file.name,
      attrs: { type: 'button', 'aria-label': `Скачать ${file.name}` },
    });
    button.addEventListener('click', () => void download(c, m.id, file.name, button));
    line.append(button, ` (${size(file.sizeBytes)})`);
    li.append(line);
  }
  return li;
}

async function download(c: Consultation, messageId: string, name: string, button: HTMLButtonElement): Promise<void> {
  if (host === null) return;
  button.disabled = true;
  try {
    const url = URL.createObjectURL(await host.api.chatFile(c.id, messageId));
    const a = h('a', { attrs: { href: url, download: name, rel: 'noopener' } });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    host.logFailure('a chat file', e);
  } finally {
    button.disabled = false;
  }
}
