/** Small DOM helpers. Text always goes in as text (`textContent`), never as HTML. */

import { ask } from '../ask';

interface Props {
  class?: string;
  text?: string;
  testid?: string;
  attrs?: Record<string, string>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class !== undefined) el.className = props.class;
  if (props.testid !== undefined) el.dataset['testid'] = props.testid;
  for (const [name, value] of Object.entries(props.attrs ?? {})) el.setAttribute(name, value);
  if (props.text !== undefined) el.textContent = props.text;
  el.append(...children);
  return el;
}

/** The one element with `data-testid="id"`, checked to be of the expected kind. */
export function byTestId<T extends HTMLElement>(id: string, kind: { new (): T; prototype: T }, root: ParentNode = document): T {
  const el = root.querySelector(`[data-testid="${id}"]`);
  if (!(el instanceof kind)) throw new Error(`the page has no ${kind.name} [data-testid="${id}"]`);
  return el;
}

/** Show `text` in `el`, or hide `el` when `text` is null or empty. */
export function say(el: HTMLElement, text: string | null): void {
  el.textContent = text ?? '';
  el.hidden = text === null || text === '';
}

/**
 * Make `list`'s children exactly `rows`, in order, moving only what has to move: a row that is
 * already in place keeps its focus and whatever its user was typing.
 */
export function reconcile(list: HTMLElement, rows: HTMLElement[]): void {
  const keep = new Set<Element>(rows);
  for (const child of Array.from(list.children)) {
    if (!keep.has(child)) child.remove();
  }
  rows.forEach((row, i) => {
    const at = list.children[i] ?? null;
    if (at !== row) list.insertBefore(row, at);
  });
}

/**
 * A button that shows and hides a panel of a consultation's row (`aria-expanded`); `fill` runs
 * on each opening. Rows are re-rendered: `open` remembers which panels are open, by `key`.
 */
export function disclosure(o: {
  key: string;
  text: string;
  testid: string;
  panelTestid: string;
  panelClass: string;
  describedBy: string;
  open: Set<string>;
  fill: (panel: HTMLElement) => void;
}): [HTMLButtonElement, HTMLElement] {
  const panelId = `${o.panelTestid}-${o.key}`;
  const toggle = h('button', {
    class: 'button secondary',
    testid: o.testid,
    text: o.text,
    attrs: { type: 'button', 'aria-expanded': 'false', 'aria-controls': panelId, 'aria-describedby': o.describedBy },
  });
  const panel = h('div', { class: o.panelClass, testid: o.panelTestid, attrs: { id: panelId } });
  panel.hidden = true;
  const show = (on: boolean): void => {
    panel.hidden = !on;
    toggle.setAttribute('aria-expanded', String(on));
    if (on) {
      o.open.add(o.key);
      o.fill(panel);
    } else o.open.delete(o.key);
  };
  toggle.addEventListener('click', () => show(panel.hidden === true));
  if (o.open.has(o.key)) show(true);
  return [toggle, panel];
}

/**
 * Ask before an action that cannot be taken back (a payment marked, money returned) in the
 * page's own dialog: `question` as its heading, `detail` under it, `yes` on the button that
 * goes ahead. Resolves true to go ahead.
 */
export function confirmAction(question: string, detail: string, yes: string): Promise<boolean> {
  const dialog = byTestId('ask', HTMLDialogElement);
  byTestId('ask-title', HTMLElement, dialog).textContent = question;
  byTestId('ask-text', HTMLElement, dialog).textContent = detail;
  const yesButton = byTestId('ask-yes', HTMLButtonElement, dialog);
  yesButton.textContent = yes;
  return ask(dialog, yesButton, byTestId('ask-no', HTMLButtonElement, dialog), question);
}
