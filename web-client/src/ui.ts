/**
 * The DOM of call.html: finds its elements by `data-testid` (the same hooks the end-to-end tests
 * use) and renders what the session reports. The page has three phases, set on `<main
 * data-phase>` and laid out by app.css: `precall` (camera preview and Join), `call`, and `message`
 * (nothing to do here: no token).
 */

import { ask } from './ask';
import type { CallView, RecordingView } from './call';
import {
  RECORDING_TEXT,
  REMOTE_MUTED_TEXT,
  STATE_TEXT,
  TEXT,
  leftText,
  roleText,
  type ConnectionState,
} from './messages';
import type { NetworkQuality, Participant, TrackKind, Waiter } from './protocol';

export type Phase = 'precall' | 'call' | 'message';

/** The element `data-testid="id"` under `root`, of the expected kind (the call page's hooks). */
export function byTestId<T extends HTMLElement>(root: ParentNode, id: string, type: new () => T): T {
  const el = root.querySelector(`[data-testid="${id}"]`);
  if (!(el instanceof type)) throw new Error(`call.html is missing the ${type.name} data-testid="${id}"`);
  return el;
}

function formatDuration(ms: number): string {
  const total = Math.floor(ms / 1000);
  const mm = String(Math.floor(total / 60)).padStart(2, '0');
  const ss = String(total % 60).padStart(2, '0');
  return `${mm}:${ss}`;
}

/** How long «Переподключение…» is shown before the page offers to try again at once. */
const RECONNECT_BUTTON_AFTER_MS = 10_000;

export class CallUi implements CallView {
  private readonly main: HTMLElement;
  readonly localVideo: HTMLVideoElement;
  private readonly remoteVideo: HTMLVideoElement;
  private readonly micLevel: HTMLElement;
  private readonly micLevelBar: HTMLElement;
  private readonly mediaWarning: HTMLElement;
  private readonly precallStatus: HTMLElement;
  readonly joinButton: HTMLButtonElement;
  readonly retryMediaButton: HTMLButtonElement;
  private readonly connState: HTMLElement;
  private readonly timer: HTMLElement;
  private readonly remoteName: HTMLElement;
  private readonly waiting: HTMLElement;
  private readonly lobbyCountdown: HTMLElement;
  private lobbyStart: number | null = null;
  private lobbyTimer: ReturnType<typeof setInterval> | undefined;
  private readonly waitingList: HTMLElement;
  private readonly waitingItems: HTMLElement;
  private waiters: Waiter[] = [];
  private waitersTimer: ReturnType<typeof setInterval> | undefined;
  /** The doctor lets this participant in (set by the page). */
  onAdmit: (participantId: string) => void = () => {};
  private readonly remoteMuted: Record<TrackKind, HTMLElement>;
  private readonly notice: HTMLElement;
  private readonly localOff: HTMLElement;
  readonly toggleMic: HTMLButtonElement;
  readonly toggleCamera: HTMLButtonElement;
  readonly hangupButton: HTMLButtonElement;
  readonly screenButton: HTMLButtonElement;
  private readonly remoteScreen: HTMLVideoElement;
  private readonly myQuality: HTMLElement;
  private readonly theirQuality: HTMLElement;
  private readonly audioOnly: HTMLElement;
  private readonly remoteFrozen: HTMLElement;
  private readonly theirAudioOnly: HTMLElement;
  private readonly enableSound: HTMLButtonElement;
  readonly rejoinButton: HTMLButtonElement;
  /** Shown after a while of «Переподключение…»: try again now instead of waiting. */
  readonly reconnectButton: HTMLButtonElement;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly messageTitle: HTMLElement;
  private readonly messageText: HTMLElement;
  private readonly toCabinet: HTMLAnchorElement;
  private readonly meeting: HTMLElement;
  private readonly afterCall: HTMLElement;
  private readonly hangupConfirm: HTMLDialogElement;
  private readonly recIndicator: HTMLElement;
  private readonly recPanel: HTMLElement;
  private readonly recText: HTMLElement;
  readonly recConsent: HTMLButtonElement;
  readonly recDecline: HTMLButtonElement;
  readonly recWithdraw: HTMLButtonElement;
  readonly recStart: HTMLButtonElement;
  readonly recStop: HTMLButtonElement;
  /** The user said no: the question is not asked again until they change their mind. */
  private declined = false;
  private recording: RecordingView | null = null;

  private state: ConnectionState | null = null;
  private rejoinAllowed = true;
  private remote: Participant | null = null;
  private timerStart: number | null = null;
  private timerHandle: ReturnType<typeof setInterval> | undefined;

  constructor(root: Document = document) {
    this.main = byTestId(root, 'app', HTMLElement);
    this.localVideo = byTestId(root, 'local-video', HTMLVideoElement);
    this.remoteVideo = byTestId(root, 'remote-video', HTMLVideoElement);
    this.micLevel = byTestId(root, 'mic-level', HTMLElement);
    this.micLevelBar = byTestId(this.micLevel, 'mic-level-bar', HTMLElement);
    this.mediaWarning = byTestId(root, 'media-warning', HTMLElement);
    this.precallStatus = byTestId(root, 'precall-status', HTMLElement);
    this.joinButton = byTestId(root, 'join', HTMLButtonElement);
    this.retryMediaButton = byTestId(root, 'retry-media', HTMLButtonElement);
    this.connState = byTestId(root, 'connection-state', HTMLElement);
    this.timer = byTestId(root, 'call-timer', HTMLElement);
    this.remoteName = byTestId(root, 'remote-name', HTMLElement);
    this.waiting = byTestId(root, 'waiting', HTMLElement);
    this.lobbyCountdown = byTestId(root, 'lobby-countdown', HTMLElement);
    this.waitingList = byTestId(root, 'waiting-list', HTMLElement);
    this.waitingItems = byTestId(this.waitingList, 'waiting-items', HTMLElement);
    this.remoteMuted = {
      audio: byTestId(root, 'remote-audio-muted', HTMLElement),
      video: byTestId(root, 'remote-video-muted', HTMLElement),
    };
    this.notice = byTestId(root, 'call-notice', HTMLElement);
    this.localOff = byTestId(root, 'local-video-off', HTMLElement);
    this.draggable(byTestId(root, 'self-tile', HTMLElement));
    this.toggleMic = byTestId(root, 'toggle-mic', HTMLButtonElement);
    this.toggleCamera = byTestId(root, 'toggle-camera', HTMLButtonElement);
    this.hangupButton = byTestId(root, 'hangup', HTMLButtonElement);
    this.screenButton = byTestId(root, 'toggle-screen', HTMLButtonElement);
    this.remoteScreen = byTestId(root, 'remote-screen', HTMLVideoElement);
    this.myQuality = byTestId(root, 'my-quality', HTMLElement);
    this.theirQuality = byTestId(root, 'their-quality', HTMLElement);
    this.audioOnly = byTestId(root, 'audio-only', HTMLElement);
    this.remoteFrozen = byTestId(root, 'remote-frozen', HTMLElement);
    this.theirAudioOnly = byTestId(root, 'their-audio-only', HTMLElement);
    this.audioOnly.textContent = TEXT.audioOnly;
    this.theirAudioOnly.textContent = TEXT.theirAudioOnly;
    this.enableSound = byTestId(root, 'enable-sound', HTMLButtonElement);
    this.rejoinButton = byTestId(root, 'rejoin', HTMLButtonElement);
    this.reconnectButton = byTestId(root, 'reconnect-now', HTMLButtonElement);
    byTestId(root, 'page-message', HTMLElement);
    this.messageTitle = byTestId(root, 'page-message-title', HTMLElement);
    this.messageText = byTestId(root, 'page-message-text', HTMLElement);
    this.toCabinet = byTestId(root, 'to-cabinet', HTMLAnchorElement);
    this.meeting = byTestId(root, 'meeting', HTMLElement);
    this.afterCall = byTestId(root, 'after-call', HTMLElement);
    this.hangupConfirm = byTestId(root, 'hangup-confirm', HTMLDialogElement);
    this.recIndicator = byTestId(root, 'recording-indicator', HTMLElement);
    this.recPanel = byTestId(root, 'recording-panel', HTMLElement);
    this.recText = byTestId(root, 'recording-text', HTMLElement);
    this.recConsent = byTestId(root, 'recording-consent', HTMLButtonElement);
    this.recDecline = byTestId(root, 'recording-decline', HTMLButtonElement);
    this.recWithdraw = byTestId(root, 'recording-withdraw', HTMLButtonElement);
    this.recStart = byTestId(root, 'recording-start', HTMLButtonElement);
    this.recStop = byTestId(root, 'recording-stop', HTMLButtonElement);
    this.recIndicator.textContent = RECORDING_TEXT.indicator;
    this.recConsent.textContent = RECORDING_TEXT.consent;
    this.recDecline.textContent = RECORDING_TEXT.decline;
    this.recWithdraw.textContent = RECORDING_TEXT.withdraw;
    this.recStart.textContent = RECORDING_TEXT.start;
    this.recStop.textContent = RECORDING_TEXT.stop;
    this.recDecline.addEventListener('click', () => {
      this.declined = true;
      this.renderRecording();
    });
    this.recConsent.addEventListener('click', () => {
      this.declined = false;
    });

    this.remoteMuted.audio.textContent = REMOTE_MUTED_TEXT.audio;
    this.remoteMuted.video.textContent = REMOTE_MUTED_TEXT.video;
    this.waiting.textContent = TEXT.waiting;
    this.enableSound.addEventListener('click', () => {
      this.remoteVideo.muted = false;
      this.enableSound.hidden = true;
      this.playRemote();
    });
  }

  /**
   * Let the own picture be dragged (mouse, finger or pen) during the call; released, it snaps
   * to the nearest corner of the stage, kept in `data-corner`.
   */
  private draggable(tile: HTMLElement): void {
    let drag: { dx: number; dy: number; id: number } | null = null;
    tile.addEventListener('pointerdown', (e) => {
      if (this.main.dataset['phase'] !== 'call') return;
      const r = tile.getBoundingClientRect();
      drag = { dx: e.clientX - r.left, dy: e.clientY - r.top, id: e.pointerId };
      tile.setPointerCapture(e.pointerId);
      tile.dataset['dragging'] = 'true';
    });
    tile.addEventListener('pointermove', (e) => {
      const stage = tile.parentElement;
      if (drag === null || e.pointerId !== drag.id || stage === null) return;
      const s = stage.getBoundingClientRect();
      const x = Math.min(Math.max(e.clientX - s.left - drag.dx, 0), s.width - tile.offsetWidth);
      const y = Math.min(Math.max(e.clientY - s.top - drag.dy, 0), s.height - tile.offsetHeight);
      Object.assign(tile.style, { left: `${x}px`, top: `${y}px`, right: 'auto', bottom: 'auto' });
    });
    const drop = (e: PointerEvent): void => {
      const stage = tile.parentElement;
      if (drag === null || e.pointerId !== drag.id || stage === null) return;
      drag = null;
      const s = stage.getBoundingClientRect();
      const r = tile.getBoundingClientRect();
      const top = r.top + r.height / 2 < s.top + s.height / 2;
      const left = r.left + r.width / 2 < s.left + s.width / 2;
      tile.dataset['corner'] = `${top ? 't' : 'b'}${left ? 'l' : 'r'}`;
      tile.removeAttribute('style');
      delete tile.dataset['dragging'];
    };
    tile.addEventListener('pointerup', drop);
    tile.addEventListener('pointercancel', drop);
    // Without a pointer: the arrows move it to the corner they point to, Enter or Space to the
    // next corner around.
    tile.addEventListener('keydown', (e) => {
      if (this.main.dataset['phase'] !== 'call') return;
      const corner = tile.dataset['corner'] ?? 'br';
      const around = ['br', 'bl', 'tl', 'tr'];
      let v = corner.charAt(0);
      let hz = corner.charAt(1);
      switch (e.key) {
        case 'ArrowUp':
          v = 't';
          break;
        case 'ArrowDown':
          v = 'b';
          break;
        case 'ArrowLeft':
          hz = 'l';
          break;
        case 'ArrowRight':
          hz = 'r';
          break;
        case 'Enter':
        case ' ': {
          const next = around[(around.indexOf(corner) + 1) % around.length] ?? 'br';
          v = next.charAt(0);
          hz = next.charAt(1);
          break;
        }
        default:
          return;
      }
      e.preventDefault();
      tile.dataset['corner'] = `${v}${hz}`;
    });
  }

  setPhase(phase: Phase): void {
    this.main.dataset['phase'] = phase;
    // The own tile is a keyboard stop only where it can move.
    const tile = this.main.querySelector<HTMLElement>('[data-testid="self-tile"]');
    if (tile !== null) tile.tabIndex = phase === 'call' ? 0 : -1;
  }

  /** A page with nothing to do but read: no token. */
  showMessage(text: string): void {
    this.messageTitle.hidden = true;
    this.messageText.textContent = text;
    this.toCabinet.hidden = true;
    this.setPhase('message');
  }

  /** A link that cannot work: why, what to do, and the way to the cabinet. */
  showLinkProblem(title: string, text: string): void {
    this.messageTitle.textContent = title;
    this.messageTitle.hidden = false;
    this.messageText.textContent = text;
    this.toCabinet.hidden = false;
    this.setPhase('message');
    document.title = `${title} — Vizit`;
  }

  /** Who meets whom and when, above the device check. */
  setMeeting(lines: { with: string; when: string; you: string }): void {
    byTestId(this.meeting, 'meeting-with', HTMLElement).textContent = lines.with;
    byTestId(this.meeting, 'meeting-when', HTMLElement).textContent = lines.when;
    byTestId(this.meeting, 'meeting-you', HTMLElement).textContent = lines.you;
    this.meeting.hidden = false;
  }

  /** What happens after the call (shown once it has ended); null: nothing to say (a test room). */
  setAfterCall(text: string | null, role: string): void {
    this.afterCall.hidden = text === null;
    byTestId(this.afterCall, 'after-call-next', HTMLElement).textContent = text ?? '';
    byTestId(this.afterCall, 'after-call-cabinet', HTMLAnchorElement).textContent =
      role === 'doctor' ? 'Написать заключение' : 'Вернуться к консультации';
  }

  /** The clinic's help line under the page after the call. */
  setHelp(text: string): void {
    byTestId(this.afterCall, 'after-call-help', HTMLElement).textContent = text;
  }

  /** Ask before hanging up; resolves true to hang up. */
  confirmHangup(): Promise<boolean> {
    const dialog = this.hangupConfirm;
    return ask(
      dialog,
      byTestId(dialog, 'hangup-yes', HTMLButtonElement),
      byTestId(dialog, 'hangup-cancel', HTMLButtonElement),
      'Завершить звонок?',
    );
  }

  // ---- pre-call ------------------------------------------------------------------------------

  setPrecallStatus(text: string): void {
    this.precallStatus.textContent = text;
  }

  setLocalStream(stream: MediaStream): void {
    const hasVideo = stream.getVideoTracks().length > 0;
    this.localOff.textContent = hasVideo ? TEXT.cameraOff : TEXT.noCamera;
    this.localOff.hidden = hasVideo;
    // Only a stream with a picture: a media element whose source never yields a frame delays the
    // page's load event forever (the tab keeps spinning).
    this.localVideo.srcObject = hasVideo ? stream : null;
    // Autoplay of a muted video is always allowed; play() only fails if the source is replaced.
    if (hasVideo) this.localVideo.play().catch(() => {});
  }

  setMediaWarning(text: string | null): void {
    this.mediaWarning.textContent = text ?? '';
    this.mediaWarning.hidden = text === null;
    this.retryMediaButton.hidden = text === null;
  }

  /** `level` in 0..1; null when there is no microphone to measure. */
  setMicLevel(level: number | null): void {
    // The whole row, label included: "Микрофон" next to nothing would only puzzle.
    (this.micLevel.parentElement ?? this.micLevel).hidden = level === null;
    const value = level ?? 0;
    this.micLevelBar.style.transform = `scaleX(${value.toFixed(3)})`;
    this.micLevel.setAttribute('aria-valuenow', String(Math.round(value * 100)));
  }

  /**
   * Enter the call layout. Buttons for devices we do not have are disabled, not hidden; showing
   * the screen is offered where the browser can (desktop browsers).
   */
  enterCall(hasAudio: boolean, hasVideo: boolean, canShareScreen: boolean): void {
    this.toggleMic.disabled = !hasAudio;
    this.toggleCamera.disabled = !hasVideo;
    this.screenButton.hidden = !canShareScreen;
    this.setPhase('call');
  }

  // ---- CallView ------------------------------------------------------------------------------

  setState(state: ConnectionState): void {
    if (state !== 'reconnecting' || this.state !== 'reconnecting') {
      clearTimeout(this.reconnectTimer);
      this.reconnectButton.hidden = true;
      if (state === 'reconnecting') {
        this.reconnectTimer = setTimeout(() => {
          this.reconnectButton.hidden = false;
        }, RECONNECT_BUTTON_AFTER_MS);
      }
    }
    this.state = state;
    this.connState.dataset['state'] = state;
    this.connState.textContent = STATE_TEXT[state];
    this.main.dataset['state'] = state;
    if (state === 'connected' && this.timerStart === null) this.startTimer();
    if (state === 'ended' || state === 'failed') {
      this.stopTimer();
      this.toggleMic.disabled = true;
      this.toggleCamera.disabled = true;
      this.screenButton.disabled = true;
      this.setQuality(null, null);
      this.setAudioOnly(false, false);
      this.setRemoteFrozen(false);
      this.hangupButton.hidden = true;
      this.rejoinButton.hidden = !this.rejoinAllowed;
      this.enableSound.hidden = true;
    }
    this.renderRemote();
    this.renderRecording();
    this.renderLobby();
    if (state === 'ended' || state === 'failed') this.setWaitingList([]);
  }

  setRemoteScreen(stream: MediaStream | null): void {
    const remote = this.remoteScreen.parentElement;
    if (remote !== null) remote.dataset['screen'] = stream === null ? 'off' : 'on';
    this.remoteScreen.hidden = stream === null;
    if (this.remoteScreen.srcObject === stream) return;
    this.remoteScreen.srcObject = stream;
    if (stream !== null) this.remoteScreen.play().catch(() => {});
  }

  setQuality(mine: NetworkQuality | null, theirs: NetworkQuality | null): void {
    this.myQuality.dataset['level'] = mine ?? '';
    this.myQuality.textContent = mine === null ? '' : `${TEXT.myQuality}: ${TEXT.quality[mine]}`;
    this.myQuality.hidden = mine === null;
    // The other party's link is worth a word only when it is not good.
    this.theirQuality.dataset['level'] = theirs ?? '';
    this.theirQuality.textContent = theirs === null ? '' : `${TEXT.theirQuality}: ${TEXT.quality[theirs]}`;
    this.theirQuality.hidden = theirs === null || theirs === 'good';
  }

  setRemoteFrozen(frozen: boolean): void {
    this.remoteFrozen.hidden = !frozen;
    this.main.dataset['frozen'] = String(frozen);
  }

  setAudioOnly(mine: boolean, theirs: boolean): void {
    this.audioOnly.hidden = !mine;
    this.theirAudioOnly.hidden = !theirs;
    this.main.dataset['audioOnly'] = String(mine || theirs);
  }

  setScreenSharing(sharing: boolean): void {
    const text = sharing ? TEXT.stopSharing : TEXT.shareScreen;
    this.screenButton.setAttribute('aria-pressed', String(sharing));
    this.screenButton.title = text;
    const label = this.screenButton.querySelector('.control-label');
    if (label !== null) label.textContent = text;
  }

  setLobbyStart(startsAt: number | null): void {
    this.lobbyStart = startsAt;
    this.renderLobby();
  }

  setWaitingList(waiting: Waiter[]): void {
    this.waiters = waiting;
    this.renderWaitingList();
    this.renderRemote();
    clearInterval(this.waitersTimer);
    // «ждёт N мин» moves on by itself.
    if (waiting.length > 0) this.waitersTimer = setInterval(() => this.renderWaitingList(), 30_000);
  }

  setRemoteParticipant(participant: Participant | null, left?: { name: string; reason: string }): void {
    this.remote = participant === null ? null : { ...participant }; // ours to update on muteChanged
    if (participant !== null) {
      this.setNotice(null);
    } else if (left !== undefined) {
      this.setNotice(leftText(left.name, left.reason));
    }
    this.renderRemote();
  }

  setRemoteMuted(kind: TrackKind, muted: boolean): void {
    if (this.remote !== null) {
      if (kind === 'audio') this.remote.audioMuted = muted;
      else this.remote.videoMuted = muted;
    }
    this.renderRemote();
  }

  setRemoteStream(stream: MediaStream | null): void {
    if (this.remoteVideo.srcObject === stream) return;
    this.remoteVideo.srcObject = stream;
    if (stream === null) {
      this.enableSound.hidden = true;
      return;
    }
    this.playRemote();
  }

  setLocalMuted(kind: TrackKind, muted: boolean): void {
    const button = kind === 'audio' ? this.toggleMic : this.toggleCamera;
    button.setAttribute('aria-pressed', String(muted));
    if (kind === 'video') this.localOff.hidden = !muted;
  }

  setRejoinAllowed(allowed: boolean): void {
    this.rejoinAllowed = allowed;
  }

  setNotice(text: string | null): void {
    this.notice.textContent = text ?? '';
    this.notice.hidden = text === null;
  }

  setRecording(recording: RecordingView): void {
    this.recording = recording;
    this.renderRecording();
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * The recording panel: ask for consent until given (or declined), then say what we wait for;
   * the doctor gets start and stop where the mode lets them; the indicator shows while recording.
   */
  private renderRecording(): void {
    const r = this.recording;
    const live = this.state === 'connecting' || this.state === 'connected' || this.state === 'reconnecting';
    const on = r !== null && live && r.mode !== 'off' && r.state !== 'off';
    const recording = on && r.state === 'recording';
    this.recIndicator.hidden = !recording;
    this.main.dataset['recording'] = recording ? 'on' : 'off';
    this.recPanel.hidden = !on;
    const show = { consent: false, decline: false, withdraw: false, start: false, stop: false };
    let text = '';
    // Answered: the panel folds to one line (the question is not asked again and again).
    let compact = false;
    if (on) {
      const declined = this.declined || r.mineDeclined;
      if (!r.mine) {
        text = declined ? RECORDING_TEXT.declined : RECORDING_TEXT.ask;
        compact = declined;
        show.consent = true;
        show.decline = !declined;
        this.recConsent.textContent = declined ? RECORDING_TEXT.changeMind : RECORDING_TEXT.consent;
        this.recConsent.className = declined ? 'link-button' : 'button primary';
        if (r.theirs && !declined) text = `${RECORDING_TEXT.otherConsented} ${text}`;
        if (r.theirsDeclined && !declined) text = `${RECORDING_TEXT.theyDeclined} ${text}`;
      } else if (r.state === 'paused') {
        text = RECORDING_TEXT.paused;
        compact = true;
        show.withdraw = true;
      } else if (r.theirsDeclined) {
        text = r.doctor ? RECORDING_TEXT.theyDeclined : RECORDING_TEXT.declined;
        compact = true;
        show.withdraw = true;
      } else if (recording) {
        text = RECORDING_TEXT.recording;
        compact = true;
        show.withdraw = true;
        show.stop = r.doctor;
      } else if (!r.theirs) {
        text = RECORDING_TEXT.waitingOther;
        show.withdraw = true;
      } else {
        text = r.doctor ? RECORDING_TEXT.readyDoctor : RECORDING_TEXT.waitingDoctor;
        show.withdraw = true;
        show.start = r.doctor;
      }
    }
    this.recText.textContent = text;
    this.recPanel.dataset['compact'] = String(compact);
    this.recConsent.hidden = !show.consent;
    this.recDecline.hidden = !show.decline;
    this.recWithdraw.hidden = !show.withdraw;
    this.recStart.hidden = !show.start;
    this.recStop.hidden = !show.stop;
  }

  /** The patient's waiting room: the text in the video area and the countdown to the start. */
  private renderLobby(): void {
    const inLobby = this.state === 'waiting';
    const start = this.lobbyStart;
    const tick = (): void => {
      if (start === null) return;
      const left = start - Date.now();
      this.lobbyCountdown.textContent = left > 0 ? TEXT.lobbyCountdown(left) : TEXT.lobbyDue;
    };
    clearInterval(this.lobbyTimer);
    this.lobbyCountdown.hidden = !inLobby || start === null;
    if (inLobby && start !== null) {
      tick();
      this.lobbyTimer = setInterval(tick, 1000);
    }
  }

  private renderWaitingList(): void {
    this.waitingList.hidden = this.waiters.length === 0;
    const now = Date.now();
    this.waitingItems.replaceChildren(
      ...this.waiters.map((w) => {
        const item = document.createElement('li');
        item.className = 'lobby-item';
        const name = document.createElement('span');
        name.className = 'lobby-name';
        name.textContent = w.name || roleText('patient');
        const since = document.createElement('span');
        since.className = 'lobby-since';
        since.textContent = TEXT.waitedFor(now - w.since);
        const admit = document.createElement('button');
        admit.type = 'button';
        admit.className = 'button primary';
        admit.dataset['testid'] = 'admit';
        admit.dataset['participant'] = w.participantId;
        admit.textContent = TEXT.admit;
        admit.setAttribute('aria-label', `${TEXT.admit}: ${name.textContent}`);
        admit.addEventListener('click', () => {
          admit.disabled = true;
          this.onAdmit(w.participantId);
        });
        item.append(name, since, admit);
        return item;
      }),
    );
  }

  private renderRemote(): void {
    const live = this.state === 'connecting' || this.state === 'connected' || this.state === 'reconnecting';
    const remote = live ? this.remote : null;
    this.waiting.textContent =
      this.state === 'waiting' ? TEXT.lobby : this.waiters.length > 0 ? TEXT.patientWaits : TEXT.waiting;
    this.waiting.hidden = !(live || this.state === 'waiting') || this.remote !== null;
    if (remote === null) {
      this.remoteName.textContent = '';
      this.remoteName.hidden = true;
    } else {
      const role = roleText(remote.role);
      this.remoteName.textContent = role !== '' && remote.name !== '' ? `${remote.name} · ${role}` : remote.name || role;
      this.remoteName.hidden = false;
    }
    this.remoteMuted.audio.hidden = remote === null || !remote.audioMuted;
    this.remoteMuted.video.hidden = remote === null || !remote.videoMuted;
  }

  private playRemote(): void {
    this.remoteVideo.play().catch((e: unknown) => {
      // The remote video carries the remote audio, so the autoplay policy may refuse to start it
      // before the user touched the page (a reconnect after a reload). Play it muted and offer a
      // button: the picture at least comes back at once.
      if (e instanceof DOMException && e.name === 'NotAllowedError' && !this.remoteVideo.muted) {
        console.warn(`vizit: ${TEXT.autoplayBlocked}`);
        this.remoteVideo.muted = true;
        this.enableSound.hidden = false;
        this.remoteVideo.play().catch(() => {});
      }
      // AbortError: srcObject changed while starting; the next play() covers it.
    });
  }

  private startTimer(): void {
    this.timerStart = Date.now();
    this.timer.hidden = false;
    this.timer.textContent = formatDuration(0);
    this.timerHandle = setInterval(() => {
      if (this.timerStart !== null) this.timer.textContent = formatDuration(Date.now() - this.timerStart);
    }, 500);
  }

  private stopTimer(): void {
    clearInterval(this.timerHandle);
  }
}
