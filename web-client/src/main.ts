/**
 * Entry point of the call page (`/call#token=…`): the pre-call check of camera and microphone,
 * then the call itself. Wires the DOM ({@link CallUi}) to the session ({@link CallSession}).
 */

import { CallSession } from './call';
import { CallChat } from './chat';
import { MicLevelMeter, acquireLocalMedia, type LocalMedia } from './media';
import { TEXT, mediaWarning } from './messages';
import { CallUi } from './ui';

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

async function main(): Promise<void> {
  const ui = new CallUi();
  const token = takeToken();
  if (token === '') {
    ui.showMessage(TEXT.noToken);
    return;
  }

  ui.setPhase('precall');
  let media: LocalMedia | null = null;
  let meter: MicLevelMeter | null = null;

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
    ui.setPrecallStatus(TEXT.ready);
    ui.joinButton.disabled = false;
    ui.retryMediaButton.disabled = false;
  };

  ui.retryMediaButton.addEventListener('click', () => void preview());

  ui.joinButton.addEventListener('click', () => {
    if (media === null || session !== null) return;
    meter?.stop();
    meter = null;
    const stream = media.stream;
    ui.enterCall(stream.getAudioTracks().length > 0, stream.getVideoTracks().length > 0, CallSession.canShareScreen());
    session = new CallSession(token, stream, ui);
    const call = session;
    ui.toggleMic.addEventListener('click', () => call.toggle('audio'));
    ui.toggleCamera.addEventListener('click', () => call.toggle('video'));
    ui.hangupButton.addEventListener('click', () => call.hangup());
    ui.reconnectButton.addEventListener('click', () => call.reconnectNow());
    ui.recConsent.addEventListener('click', () => call.setRecordingConsent(true));
    ui.recWithdraw.addEventListener('click', () => call.setRecordingConsent(false));
    ui.recStart.addEventListener('click', () => call.controlRecording(true));
    ui.recStop.addEventListener('click', () => call.controlRecording(false));
    ui.onAdmit = (participantId) => call.admit(participantId);
    ui.screenButton.addEventListener('click', () => void call.toggleScreenShare());
    call.start();
    // The chat lives beside the call: its history stays readable after a hang-up.
    const chat = new CallChat(token, tokenRole(token) === 'doctor');
    chat.start();
    window.addEventListener('pagehide', () => chat.stop());
  });

  // After the call: a fresh page is the simplest way to start over (new preview, new session).
  ui.rejoinButton.addEventListener('click', () => window.location.reload());

  await preview();
}

void main().catch((e: unknown) => {
  console.error('vizit: the call page failed to start', e);
});
