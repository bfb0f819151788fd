/**
 * Entry point of the call page (`/call#token=…`): the pre-call check of camera and microphone,
 * then the call itself. Wires the DOM ({@link CallUi}) to the session ({@link CallSession}).
 */

import { CallSession } from './call';
import { CallChat } from './chat';
import { checkConnection, playTestSound } from './check';
import { MicLevelMeter, acquireLocalMedia, type LocalMedia } from './media';
import { checkLink } from './link';
import { AFTER_CALL_TEXT, CHECK_TEXT, TEXT, linkProblem, mediaWarning, meetingText } from './messages';
import { CallUi, byTestId } from './ui';

/** Hooks for the end-to-end tests (and for a curious engineer in the devtools console). */
interface VizitDebug {
  pc(): RTCPeerConnection | null;
  state(): string;
}

declare global {
  interface Window {
    vizit: VizitDebug;
  }
}

let session: CallSession | null = null;
window.vizit = {
  pc: () => session?.peerConnection() ?? null,
  state: () => session?.connectionState() ?? 'idle',
};

const TOKEN_KEY = 'vizit.callToken';

/**
 * The join token: from the link (`#token=…`, or `?token=…` of older links), then kept in this
 * tab's sessionStorage (a reload still works) and taken out of the address bar at once, so it
 * stays in neither the browser's history nor a shared screenshot.
 */
function takeToken(): string {
  const url = new URL(window.location.href);
  const fromHash = new URLSearchParams(url.hash.replace(/^#/, '')).get('token')?.trim() ?? '';
  const fromQuery = url.searchParams.get('token')?.trim() ?? '';
  const fresh = fromHash !== '' ? fromHash : fromQuery;
  if (fresh !== '') {
    try {
      sessionStorage.setItem(TOKEN_KEY, fresh);
    } catch {
      // Storage off: the call works, a reload asks for the link again.
    }
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search);
    return fresh;
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY)?.trim() ?? '';
  } catch {
    return '';
  }
}

/** The role the token was issued for (its payload is not secret; the server checks it). */
function tokenRole(token: string): string | null {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as { role?: unknown };
    return typeof claims.role === 'string' ? claims.role : null;
  } catch {
    return null;
  }
}

/** The speakers' test sound and the test call through the server, under the preview. */
function wireChecks(stream: () => MediaStream | null): void {
  const speakers = byTestId(document, 'test-speakers', HTMLButtonElement);
  const heard = byTestId(document, 'speakers-result', HTMLElement);
  speakers.addEventListener('click', () => {
    speakers.disabled = true;
    heard.hidden = false;
    heard.textContent = CHECK_TEXT.playing;
    heard.dataset['state'] = 'playing';
    void playTestSound()
      .then(() => {
        heard.textContent = CHECK_TEXT.played;
        heard.dataset['state'] = 'played';
      })
      .catch(() => {
        heard.textContent = CHECK_TEXT.noSound;
        heard.dataset['state'] = 'failed';
      })
      .finally(() => {
        speakers.disabled = false;
      });
  });

  const connection = byTestId(document, 'test-connection', HTMLButtonElement);
  const result = byTestId(document, 'connection-result', HTMLElement);
  const verdict = byTestId(document, 'connection-verdict', HTMLElement);
  const numbers = byTestId(document, 'connection-numbers', HTMLElement);
  connection.addEventListener('click', () => {
    connection.disabled = true;
    result.hidden = false;
    result.dataset['verdict'] = '';
    result.setAttribute('aria-busy', 'true');
    numbers.textContent = '';
    verdict.textContent = CHECK_TEXT.connecting;
    void checkConnection(stream() ?? new MediaStream(), (step) => {
      verdict.textContent = step === 'connecting' ? CHECK_TEXT.connecting : CHECK_TEXT.measuring;
    })
      .then((r) => {
        result.dataset['verdict'] = r.verdict;
        verdict.textContent = CHECK_TEXT.verdict[r.verdict];
        numbers.textContent = r.verdict === 'failed' ? '' : CHECK_TEXT.numbers(r.upKbps, r.downKbps, r.loss, r.rttMs, r.path);
        console.info(`vizit: connection check ${r.verdict}: up ${r.upKbps} kbps, down ${r.downKbps} kbps, loss ${r.loss}, rtt ${r.rttMs} ms, ${r.path}`);
      })
      .finally(() => {
        result.removeAttribute('aria-busy');
        connection.disabled = false;
      });
  });
}

async function main(): Promise<void> {
  const ui = new CallUi();
  // `/check`: the pre-call check on its own, before one has a link to a call.
  const checkOnly = window.location.pathname === '/check';
  const token = checkOnly ? '' : takeToken();
  if (!checkOnly && token === '') {
    ui.showMessage(TEXT.noToken);
    return;
  }

  /** The call is a consultation's (it has a chat); null: not known (the check did not answer). */
  let consultation: boolean | null = null;
  if (!checkOnly) {
    // The link first: an expired or cancelled one is said before the camera is asked for.
    const checked = await checkLink(token);
    if (checked.kind === 'ok') consultation = checked.link.consultation !== null;
    if (checked.kind === 'refused') {
      const { title, text } = linkProblem(checked.code);
      ui.showLinkProblem(title, text);
      return;
    }
    if (checked.kind === 'ok' && checked.link.consultation !== null) {
      const { role, consultation } = checked.link;
      ui.setMeeting(meetingText(role, consultation, Date.now(), Intl.DateTimeFormat().resolvedOptions().timeZone));
      ui.setAfterCall(role === 'doctor' ? AFTER_CALL_TEXT.doctor : AFTER_CALL_TEXT.patient, role);
    } else {
      ui.setAfterCall(null, '');
    }
    // The clinic's help line, for the page after the call.
    void fetch('/api/v1/auth/options', { cache: 'no-store' })
      .then(async (r) => (r.ok ? ((await r.json()) as { help?: string }) : {}))
      .then((o) => {
        if (typeof o.help === 'string' && o.help !== '') ui.setHelp(`Помощь: ${o.help}`);
      })
      .catch(() => {});
  }

  ui.setPhase('precall');
  let media: LocalMedia | null = null;
  let meter: MicLevelMeter | null = null;
  wireChecks(() => media?.stream ?? null);
  if (checkOnly) {
    document.title = 'Проверка перед консультацией — Vizit';
    byTestId(document, 'precall-title', HTMLElement).hidden = false;
    ui.joinButton.hidden = true;
  }

  const preview = async (): Promise<void> => {
    ui.joinButton.disabled = true;
    ui.retryMediaButton.disabled = true;
    ui.setPrecallStatus(TEXT.askingMedia);
    meter?.stop();
    meter = null;
    for (const track of media?.stream.getTracks() ?? []) track.stop();

    media = await acquireLocalMedia();
    ui.setLocalStream(media.stream);
    ui.setMediaWarning(mediaWarning(media));
    const mic = media.stream.getAudioTracks()[0];
    if (mic === undefined) {
      ui.setMicLevel(null);
    } else {
      try {
        meter = new MicLevelMeter(mic, (level) => ui.setMicLevel(level));
      } catch (e) {
        // No Web Audio: the call works without the meter.
        console.warn('vizit: no microphone level meter', e);
        ui.setMicLevel(null);
      }
    }
    ui.setPrecallStatus(checkOnly ? CHECK_TEXT.ready : TEXT.ready);
    ui.joinButton.disabled = false;
    ui.retryMediaButton.disabled = false;
  };

  ui.retryMediaButton.addEventListener('click', () => void preview());

  ui.joinButton.addEventListener('click', () => {
    if (media === null || session !== null) return;
    meter?.stop();
    meter = null;
    const stream = media.stream;
    document.querySelector('[data-testid="app"]')?.setAttribute('data-role', tokenRole(token) ?? '');
    ui.enterCall(stream.getAudioTracks().length > 0, stream.getVideoTracks().length > 0, CallSession.canShareScreen());
    session = new CallSession(token, stream, ui);
    const call = session;
    ui.toggleMic.addEventListener('click', () => call.toggle('audio'));
    ui.toggleCamera.addEventListener('click', () => call.toggle('video'));
    ui.hangupButton.addEventListener('click', () => {
      void ui.confirmHangup().then((yes) => {
        if (yes) call.hangup();
      });
    });
    ui.reconnectButton.addEventListener('click', () => call.reconnectNow());
    ui.recConsent.addEventListener('click', () => call.setRecordingConsent(true));
    ui.recWithdraw.addEventListener('click', () => call.setRecordingConsent(false));
    // «Не даю согласия» is an answer the doctor sees at once.
    ui.recDecline.addEventListener('click', () => call.setRecordingConsent(false));
    ui.recStart.addEventListener('click', () => call.controlRecording(true));
    ui.recStop.addEventListener('click', () => call.controlRecording(false));
    ui.onAdmit = (participantId) => call.admit(participantId);
    ui.screenButton.addEventListener('click', () => void call.toggleScreenShare());
    call.start();
    // The chat lives beside the call: its history stays readable after a hang-up.
    // A test room (not a consultation) has no chat: not even asked.
    if (consultation !== false) {
      const chat = new CallChat(token, tokenRole(token) === 'doctor');
      chat.start();
      window.addEventListener('pagehide', () => chat.stop());
    }
  });

  // After the call: a fresh page is the simplest way to start over (new preview, new session).
  ui.rejoinButton.addEventListener('click', () => window.location.reload());

  await preview();
}

void main().catch((e: unknown) => {
  console.error('vizit: the call page failed to start', e);
});
