/**
 * Where the page keeps its session token: `sessionStorage` (one tab, gone when the tab closes),
 * never a cookie or `localStorage`. The clinic portal hands a patient over with
 * `/consultations#session=<token>`: the fragment never reaches a server or a Referer, and the
 * page removes it from the address bar (and so from the history) as soon as it has read it.
 */

const KEY = 'vizit.session';

/** Memory copy, for browsers where storage throws (Safari private mode, storage disabled). */
let memory: string | null = null;

export function loadToken(): string | null {
  try {
    return window.sessionStorage.getItem(KEY) ?? memory;
  } catch {
    return memory;
  }
}

export function saveToken(token: string): void {
  memory = token;
  try {
    window.sessionStorage.setItem(KEY, token);
  } catch {
    // The memory copy lasts until the page is left; that is the best we can do.
  }
}

export function clearToken(): void {
  memory = null;
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // Nothing stored.
  }
}

/**
 * Take a token handed over in the URL fragment (`#session=…`), store it, and remove the
 * fragment from the address bar. Returns true when a token was taken. Other fragment
 * parameters, if any, are kept.
 */
export function takeTokenFromFragment(): boolean {
  const hash = window.location.hash;
  if (hash.length <= 1) return false;
  const params = new URLSearchParams(hash.slice(1));
  const token = params.get('session');
  if (token === null) return false;
  params.delete('session');
  const rest = params.toString();
  const url = `${window.location.pathname}${window.location.search}${rest === '' ? '' : `#${rest}`}`;
  window.history.replaceState(window.history.state, '', url);
  const trimmed = token.trim();
  if (trimmed === '') return false;
  saveToken(trimmed);
  return true;
}
