/**
 * One participant's side of a call: the signaling socket, the RTCPeerConnection to the SFU, and
 * the connection state the user sees. Knows nothing about the DOM: it reports to a {@link CallView}.
 *
 * A "link" is one socket plus one peer connection. When either breaks, the session throws the
 * whole link away and joins again with the same token on a fresh one (the server replaces the
 * old session of the same participant), with backoff, for about two minutes. Every callback of a
 * link checks that its link is still the current one, so a late event from a discarded socket or
 * peer connection cannot touch the new one.
 */

import type { ConnectionState } from './messages';
import { TEXT, errorText } from './messages';
import {
  FATAL_NO_RETRY,
  FATAL_RETRY,
  PROTOCOL_VERSION,
  type ClientMessage,
  type CodecMismatchMessage,
  type JoinedMessage,
  type Participant,
  type RecordingMessage,
  type ServerMessage,
  type TrackKind,
  type Waiter,
  type NetworkQuality,
} from './protocol';
import { SignalingClient, signalingUrl } from './signaling';

export interface CallView {
  setState(state: ConnectionState): void;
  /** The other party, or null when alone. `left` says why the previous one is gone. */
  setRemoteParticipant(participant: Participant | null, left?: { name: string; reason: string }): void;
  setRemoteMuted(kind: TrackKind, muted: boolean): void;
  /** The other party's media (audio and video in one stream), or null to clear the video. */
  setRemoteStream(stream: MediaStream | null): void;
  setLocalMuted(kind: TrackKind, muted: boolean): void;
  /** A sentence about the call as a whole (why it failed or ended); null clears it. */
  setNotice(text: string | null): void;
  /** Whether joining again from this page can work once the call has ended or failed. */
  setRejoinAllowed(allowed: boolean): void;
  /** The Room's recording state, and where we stand in it. */
  setRecording(recording: RecordingView): void;
  /** In the waiting room (state `waiting`): when the consultation is booked to start, if known. */
  setLobbyStart(startsAt: number | null): void;
  /** The doctor's list of who waits to be admitted. */
  setWaitingList(waiting: Waiter[]): void;
  /** The other party's screen, or null when they show none. */
  setRemoteScreen(stream: MediaStream | null): void;
  /** Whether we show our screen. */
  setScreenSharing(sharing: boolean): void;
  /** How well our link and the other party's carry the call (null: not known). */
  setQuality(mine: NetworkQuality | null, theirs: NetworkQuality | null): void;
  /** Whether our link, and the other party's, carry only audio now (too weak for video). */
  setAudioOnly(mine: boolean, theirs: boolean): void;
  /** The other party's picture stopped though it should move (a frozen video). */
  setRemoteFrozen(frozen: boolean): void;
}

/** What the call page shows about recording. */
export interface RecordingView {
  /** `off`, `auto` or `doctor`. */
  mode: string;
  /** `off`, `awaitingConsent`, `awaitingStart`, `recording` or `paused`. */
  state: string;
  /** We have consented. */
  mine: boolean;
  /** The other party has consented. */
  theirs: boolean;
  /** We said no (the server has it). */
  mineDeclined: boolean;
  /** The other party said no. */
  theirsDeclined: boolean;
  /** We are the doctor (who may start and stop it). */
  doctor: boolean;
}

/**
 * The other party is a person; a `recorder` participant (docs: the Room vocabulary) may also be
 * in the Room and is not shown as the one we talk to.
 */
function isPerson(p: Participant): boolean {
  return p.role !== 'recorder';
}

/** Codes after which the same link can never work again: offering to rejoin would only fail. */
const NO_REJOIN: ReadonlySet<string> = new Set(['tokenExpired', 'tokenInvalid']);

/** Backoff between rejoin attempts: 1 s, 2 s, 4 s, 8 s, then 10 s. */
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 10_000;
/** After this long without a working link, stop trying and say so. */
const RECONNECT_GIVE_UP_MS = 120_000;
/** A link that has not reached `connected` by then is treated as broken. */
const LINK_TIMEOUT_MS = 20_000;
/**
 * ICE `disconnected` often heals by itself (a lost consent check on a busy machine, a Wi-Fi
 * hiccup), but Chromium takes ~5 s to report it at all: a restart (one offer, same session) is
 * cheap, so it follows after a short wait. A change of network then recovers in ~8 s.
 */
const DISCONNECTED_GRACE_MS = 1_000;
/** An ICE restart that has not reconnected by then gives way to a full rejoin. */
const ICE_RESTART_TIMEOUT_MS = 10_000;
/** Between attempts to open a socket that resumes the session. */
const RESUME_RETRY_MS = 1_000;
/** How often the link's statistics are read to judge its quality. */
const QUALITY_EVERY_MS = 2_000;
/**
 * Audio only: a link judged poor (seen twice, ~4 s) stops video both ways; it comes back once
 * the link has been good for this long…
 */
const AUDIO_ONLY_HOLD_MS = 10_000;
/** …twice as long (up to this) when the link fell back within a minute of the last try. */
const AUDIO_ONLY_MAX_HOLD_MS = 80_000;
const AUDIO_ONLY_RELAPSE_MS = 60_000;

/**
 * The quality of a link from its round trip (seconds) and the share of packets lost (0–1) on the
 * way out (as the server's reports say) or in, whichever is worse. Video calls suffer beyond
 * ~3 % loss or ~300 ms; beyond ~10 % or ~800 ms a picture is hardly usable.
 */
export function judgeQuality(rtt: number | null, loss: number): NetworkQuality {
  if (loss > 0.1 || (rtt !== null && rtt > 0.8)) return 'poor';
  if (loss > 0.03 || (rtt !== null && rtt > 0.3)) return 'fair';
  return 'good';
}

interface Link {
  readonly id: number;
  /** The socket of the session; replaced when a lost one is resumed on a new socket. */
  signaling: SignalingClient;
  pc: RTCPeerConnection | null;
  /** Held so it is not collected: it guarantees a transport even when we send no media. */
  channel: RTCDataChannel | null;
  /**
   * SDP steps (our offers, the server's answers and offers) run one at a time, in arrival order,
   * so a server offer is always judged against a settled signaling state.
   */
  sdpChain: Promise<void>;
  linkTimer: ReturnType<typeof setTimeout> | undefined;
  graceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while an ICE restart is under way: when it gives way to a full rejoin. */
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while the session is being resumed on a new socket. */
  resumeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The session's resume token (from `joined`/`resumed`) and how long the server waits. */
  resume: { token: string; graceMs: number } | null;
}

export class CallSession {
  private state: ConnectionState = 'connecting';
  private link: Link | null = null;
  private nextLinkId = 1;
  private remote: Participant | null = null;
  private remoteStream: MediaStream | null = null;
  private readonly muted: Record<TrackKind, boolean> = { audio: false, video: false };
  /** Our own identity in the Room, from `joined`. */
  private me: { participantId: string; role: string } | null = null;
  /** Our consent to recording as the user last gave it (restated after a reconnect). */
  private consent = false;
  private recording: RecordingMessage | null = null;
  /** The notice shown is about a codec of the other party's this browser did not accept. */
  private codecNotice = false;
  /** TURN servers with this join's credentials, from `joined`. */
  private iceServers: RTCIceServer[] = [];
  /** A direct attempt failed: the next links go through the TURN server only. */
  private relayOnly = false;
  /** Our screen, while we show it. */
  private screen: MediaStreamTrack | null = null;
  /** The browser is asking the user which screen to show. */
  private choosingScreen = false;
  /** Our link as last said to the server, the level seen last time (a change must be seen twice). */
  private quality: { said: NetworkQuality | null; seen: NetworkQuality | null } = { said: null, seen: null };
  /** Packet counts of the previous reading, for the loss on the way in. */
  private inbound = { received: 0, lost: 0 };
  /** Frames of the other party's video decoded by the previous reading, and readings since one came. */
  private frames = { decoded: 0, still: 0, frozen: false };
  /**
   * Our link carries only audio: we send no video and the server forwards us none. Since when
   * the link has been good again, how long it must stay so, when the last spell ended.
   */
  private audioOnly = { on: false, goodSince: null as number | null, holdMs: AUDIO_ONLY_HOLD_MS, offAt: -Infinity };
  private qualityTimer: ReturnType<typeof setInterval> | undefined;
  /** The transceiver that sends it on the current peer connection. */
  private screenTransceiver: RTCRtpTransceiver | null = null;
  /** What each of the other party's video tracks is: the first the camera, a later one the screen. */
  private readonly remoteVideo = new Map<MediaStreamTrack, 'camera' | 'screen'>();
  /** Set while recovering: when the trouble started and how many attempts were made. */
  private recovery: { since: number; attempts: number; timer: ReturnType<typeof setTimeout> | undefined } | null =
    null;

  constructor(
    private readonly token: string,
    private readonly local: MediaStream,
    private readonly view: CallView,
  ) {
    // A phone that regains network should not wait out the backoff.
    window.addEventListener('online', () => this.retryNow());
    // Closing the tab: tell the other party at once rather than after the server notices.
    window.addEventListener('pagehide', () => {
      if (this.isActive()) this.link?.signaling.send({ type: 'leave' });
    });
  }

  connectionState(): ConnectionState {
    return this.state;
  }

  peerConnection(): RTCPeerConnection | null {
    return this.link?.pc ?? null;
  }

  start(): void {
    this.view.setState(this.state); // `connecting`: the view has not been told anything yet
    this.openLink();
    this.qualityTimer = setInterval(() => void this.judgeLink(), QUALITY_EVERY_MS);
  }

  /** Read the link's statistics; a level seen twice in a row is shown and told to the other party. */
  private async judgeLink(): Promise<void> {
    if (!this.isActive()) {
      clearInterval(this.qualityTimer);
      return;
    }
    const pc = this.link?.pc;
    if (!pc || this.state !== 'connected') return;
    const stats = await pc.getStats();
    let rtt: number | null = null;
    let lossOut = 0;
    let received = 0;
    let lost = 0;
    let decoded = 0;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded ?? 0;
      if (r.type === 'candidate-pair' && r.nominated && typeof r.currentRoundTripTime === 'number') {
        rtt = r.currentRoundTripTime;
      } else if (
        r.type === 'remote-inbound-rtp' &&
        typeof r.fractionLost === 'number' &&
        // A paused video sender keeps its last report: only audio speaks for the link then.
        !(this.audioOnly.on && r.kind === 'video')
      ) {
        lossOut = Math.max(lossOut, r.fractionLost);
      } else if (r.type === 'inbound-rtp') {
        received += r.packetsReceived ?? 0;
        lost += Math.max(0, r.packetsLost ?? 0);
      }
    });
    const dReceived = received - this.inbound.received;
    const dLost = lost - this.inbound.lost;
    this.inbound = { received, lost };
    const lossIn = dReceived + dLost > 0 && dLost > 0 ? dLost / (dReceived + dLost) : 0;
    const level = judgeQuality(rtt, Math.max(lossOut, lossIn));
    const seen = this.quality.seen;
    this.quality.seen = level;
    if (level === seen && level !== this.quality.said) {
      this.quality.said = level;
      this.send({ type: 'quality', level });
      this.view.setQuality(level, this.remote?.quality ?? null);
    }
    this.judgeAudioOnly(level);
    this.judgeFrozen(decoded);
  }

  /**
   * The other party's picture is frozen when no frame was decoded for two readings (~4 s)
   * while it should move: they are there with the camera on, and video flows both ways.
   */
  private judgeFrozen(decoded: number): void {
    const f = this.frames;
    const moving = decoded > f.decoded;
    const expected = this.remote !== null && !this.remote.videoMuted && !this.remote.audioOnly && !this.audioOnly.on && f.decoded > 0;
    f.still = moving ? 0 : f.still + 1;
    f.decoded = decoded;
    const frozen = expected && f.still >= 2;
    if (frozen !== f.frozen) {
      f.frozen = frozen;
      this.view.setRemoteFrozen(frozen);
    }
  }

  /**
   * A link judged poor cannot carry video: stop it both ways (audio only), and bring it back
   * once the link has been good for a while — longer after each relapse, so a link that can
   * carry audio but not video does not flap.
   */
  private judgeAudioOnly(level: NetworkQuality): void {
    const a = this.audioOnly;
    const now = Date.now();
    if (!a.on) {
      if (this.quality.said !== 'poor') return;
      a.holdMs = now - a.offAt < AUDIO_ONLY_RELAPSE_MS ? Math.min(a.holdMs * 2, AUDIO_ONLY_MAX_HOLD_MS) : AUDIO_ONLY_HOLD_MS;
      this.setAudioOnly(true);
      return;
    }
    if (level !== 'good') {
      a.goodSince = null;
      return;
    }
    a.goodSince ??= now;
    if (now - a.goodSince >= a.holdMs) {
      a.offAt = now;
      this.setAudioOnly(false);
    }
  }

  private setAudioOnly(on: boolean): void {
    this.audioOnly.on = on;
    this.audioOnly.goodSince = null;
    console.info(`vizit: ${on ? 'the link cannot carry video: audio only' : 'the link recovered: video again'}`);
    this.send({ type: 'audioOnly', on });
    void this.pauseVideo(on);
    this.view.setAudioOnly(on, this.remote?.audioOnly ?? false);
  }

  /** Stop (or resume) sending our video — camera and screen — without renegotiating. */
  private async pauseVideo(paused: boolean): Promise<void> {
    const pc = this.link?.pc;
    if (!pc) return;
    // By the transceiver's kind: a screen sender without its track now keeps the setting too.
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind !== 'video' || t.currentDirection === 'stopped') continue;
      const sender = t.sender;
      const params = sender.getParameters();
      if (params.encodings.length === 0) continue;
      for (const e of params.encodings) e.active = !paused;
      try {
        await sender.setParameters(params);
      } catch (e) {
        console.warn('vizit: the video sender could not be paused', e);
      }
    }
  }

  /** Hang up: tell the server, release the camera and microphone, and stay ended. */
  hangup(): void {
    if (!this.isActive()) return;
    this.link?.signaling.send({ type: 'leave' });
    this.dropLink();
    this.stopRecovery();
    for (const track of this.local.getTracks()) track.stop();
    this.stopScreenShare();
    this.setRemote(null);
    this.view.setNotice(TEXT.youHungUp);
    this.setState('ended');
  }

  /** The user will not wait any longer: drop the link being recovered and join again now. */
  reconnectNow(): void {
    if (!this.isActive() || this.state !== 'reconnecting') return;
    this.linkBroken('the user asked to reconnect');
    this.retryNow();
  }

  /** Mute or unmute our own microphone or camera, without renegotiating. */
  toggle(kind: TrackKind): void {
    const tracks = this.tracks(kind);
    if (tracks.length === 0 || !this.isActive()) return;
    const muted = !this.muted[kind];
    this.muted[kind] = muted;
    // A disabled track keeps its sender: it sends silence or black frames, and unmuting is instant.
    for (const track of tracks) track.enabled = !muted;
    this.send({ type: 'mute', kind, muted });
    this.view.setLocalMuted(kind, muted);
  }

  /** Give or withdraw consent to the call being recorded. */
  setRecordingConsent(consent: boolean): void {
    if (!this.isActive()) return;
    this.consent = consent;
    this.send({ type: 'recordingConsent', consent });
  }

  /** The doctor starts or stops the recording. */
  controlRecording(start: boolean): void {
    if (!this.isActive()) return;
    this.send({ type: 'recording', action: start ? 'start' : 'stop' });
  }

  /** Whether this browser can show its screen (desktop browsers). */
  static canShareScreen(): boolean {
    return typeof navigator.mediaDevices?.getDisplayMedia === 'function';
  }

  /**
   * Show our screen as a second video track (the other party sees it large), or stop. The
   * browser asks the user what to show; a refusal leaves everything as it was.
   */
  async toggleScreenShare(): Promise<void> {
    if (!this.isActive()) return;
    if (this.screen !== null) {
      this.stopScreenShare();
      return;
    }
    if (this.choosingScreen) return;
    this.choosingScreen = true;
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      console.warn('vizit: no screen to show', e);
      return;
    } finally {
      this.choosingScreen = false;
    }
    const track = stream.getVideoTracks()[0];
    if (track === undefined || !this.isActive() || this.screen !== null) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    // The browser's own «Stop sharing» bar ends the track.
    track.addEventListener('ended', () => {
      if (this.screen === track) this.stopScreenShare();
    });
    this.screen = track;
    // Told before the track arrives, so the other page knows the new video is the screen.
    this.send({ type: 'screenShare', sharing: true });
    const pc = this.link?.pc;
    if (pc) this.sendScreen(pc, track);
    this.view.setScreenSharing(true);
  }

  private stopScreenShare(): void {
    const track = this.screen;
    if (track === null) return;
    this.screen = null;
    track.stop();
    this.send({ type: 'screenShare', sharing: false });
    const transceiver = this.screenTransceiver;
    if (transceiver !== null && transceiver.currentDirection !== 'stopped') {
      // Kept, inactive, for the next time: the SDP does not grow with every share.
      void transceiver.sender.replaceTrack(null);
      transceiver.direction = 'inactive';
    }
    this.view.setScreenSharing(false);
  }

  /** Send `track` (our screen) on `pc`: on its screen transceiver if it has one, else a new one. */
  private sendScreen(pc: RTCPeerConnection, track: MediaStreamTrack): void {
    const transceiver = this.screenTransceiver;
    if (transceiver !== null && pc.getTransceivers().includes(transceiver)) {
      void transceiver.sender.replaceTrack(track);
      transceiver.direction = 'sendonly';
    } else {
      this.screenTransceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])] });
    }
    if (this.audioOnly.on) void this.pauseVideo(true);
  }

  /** The doctor lets a patient out of the waiting room into the call. */
  admit(participantId: string): void {
    if (!this.isActive()) return;
    this.send({ type: 'admit', participantId });
  }

  private showRecording(): void {
    const r = this.recording;
    if (r === null || this.me === null) return;
    const me = this.me.participantId;
    this.view.setRecording({
      mode: r.mode,
      state: r.state,
      mine: r.consented.includes(me),
      theirs: r.consented.some((id) => id !== me),
      mineDeclined: r.declined.includes(me),
      theirsDeclined: r.declined.some((id) => id !== me),
      doctor: this.me.role === 'doctor',
    });
  }

  // ---- link lifecycle ------------------------------------------------------------------------

  private openLink(): void {
    this.dropLink();
    const id = this.nextLinkId++;
    const signaling = this.openSocket(id, { type: 'join', version: PROTOCOL_VERSION, token: this.token }, (why) =>
      this.signalingLost(`signaling: ${why}`),
    );
    this.link = {
      id,
      signaling,
      pc: null,
      channel: null,
      sdpChain: Promise.resolve(),
      linkTimer: undefined,
      graceTimer: undefined,
      restartTimer: undefined,
      resumeTimer: undefined,
      resume: null,
    };
    this.armLinkTimer(this.link);
  }

  /** A link that has not connected within LINK_TIMEOUT_MS of this is broken. */
  private armLinkTimer(link: Link): void {
    clearTimeout(link.linkTimer);
    link.linkTimer = setTimeout(() => {
      if (!this.isCurrent(link.id)) return;
      this.preferRelay();
      this.linkBroken('the link did not connect in time');
    }, LINK_TIMEOUT_MS);
  }

  /**
   * A socket for link `linkId` that sends `hello` once open; its messages and its loss (`lost`)
   * count only while it is the link's current socket.
   */
  private openSocket(linkId: number, hello: ClientMessage, lost: (why: string) => void): SignalingClient {
    const mine = (): boolean => this.isCurrent(linkId) && this.link?.signaling === signaling;
    const signaling: SignalingClient = new SignalingClient(signalingUrl(), {
      onOpen: () => {
        if (mine()) signaling.send(hello);
      },
      onMessage: (message) => {
        if (mine()) this.handleMessage(message);
      },
      onLost: (why) => {
        if (mine()) lost(why);
      },
    });
    return signaling;
  }

  /**
   * The socket is gone. A session whose media is up (or being restored) is resumed on a new
   * socket while the server keeps it; before that, or without a resume token, join again.
   */
  private signalingLost(reason: string): void {
    const link = this.link;
    if (link === null) return;
    const resume = link.resume;
    if (link.pc === null || resume === null) {
      this.linkBroken(reason);
      return;
    }
    console.warn(`vizit: ${reason}; resuming the session on a new socket`);
    link.resume = null; // good once
    const deadline = Date.now() + resume.graceMs;
    const open = (): void => {
      link.resumeTimer = undefined;
      if (!this.isCurrent(link.id)) return;
      if (Date.now() > deadline) {
        this.linkBroken('the session could not be resumed in time');
        return;
      }
      const hello: ClientMessage = { type: 'resume', version: PROTOCOL_VERSION, token: this.token, resumeToken: resume.token };
      link.signaling = this.openSocket(link.id, hello, (why) => {
        if (link.resume !== null) {
          // Resumed, then lost again: resume again with the new token.
          this.signalingLost(`signaling: ${why}`);
        } else {
          link.resumeTimer = setTimeout(open, RESUME_RETRY_MS);
        }
      });
    };
    open();
  }

  /** The session is back on a new socket: restate what may have been lost meanwhile. */
  private handleResumed(token: string, graceMs: number): void {
    const link = this.link;
    if (link === null) return;
    link.resume = { token, graceMs };
    console.info('vizit: session resumed on a new socket');
    for (const kind of ['audio', 'video'] as const) this.send({ type: 'mute', kind, muted: this.muted[kind] });
    if (this.consent) this.send({ type: 'recordingConsent', consent: true });
    // Said while the socket was down, it was lost; the other page needs it to tell our tracks apart.
    this.send({ type: 'screenShare', sharing: this.screen !== null });
    if (this.quality.said !== null) this.send({ type: 'quality', level: this.quality.said });
    if (this.audioOnly.on) this.send({ type: 'audioOnly', on: true });
    // The server lists who waits afresh after `resumed`, if anyone does.
    this.view.setWaitingList([]);
    const pc = link.pc;
    if (pc === null) return;
    this.enqueueSdp(async (current) => {
      // An offer sent while the socket was down never arrived: send it again.
      const local = current.localDescription;
      if (current.signalingState === 'have-local-offer' && local !== null) {
        this.send({ type: 'offer', sdp: local.sdp });
      }
    });
    if (pc.iceConnectionState === 'disconnected' || pc.iceConnectionState === 'failed') this.restartIce(link, pc);
  }

  /** A direct path failed: if there is a TURN server, the next attempts use only it. */
  private preferRelay(): void {
    if (this.relayOnly || this.iceServers.length === 0) return;
    console.warn('vizit: no direct path to the server; going through the TURN server only');
    this.relayOnly = true;
  }

  /**
   * Ask for new ICE credentials and candidates (a network change or a loss): the media path is
   * found again without a new session. If it does not reconnect in time, join again.
   */
  private restartIce(link: Link, pc: RTCPeerConnection): void {
    if (link.restartTimer !== undefined) return;
    console.warn('vizit: restarting ICE');
    link.restartTimer = setTimeout(() => {
      link.restartTimer = undefined;
      if (this.isCurrent(link.id) && pc.connectionState !== 'connected') {
        this.preferRelay();
        this.linkBroken('the ICE restart did not reconnect');
      }
    }, ICE_RESTART_TIMEOUT_MS);
    pc.restartIce();
  }

  /** Close the current socket and peer connection; their late events are ignored from now on. */
  private dropLink(): void {
    const link = this.link;
    if (link === null) return;
    this.link = null;
    clearTimeout(link.linkTimer);
    clearTimeout(link.graceTimer);
    clearTimeout(link.restartTimer);
    clearTimeout(link.resumeTimer);
    link.signaling.close();
    link.channel?.close();
    link.pc?.close();
  }

  private isCurrent(id: number): boolean {
    return this.link !== null && this.link.id === id && this.isActive();
  }

  private isActive(): boolean {
    return this.state !== 'ended' && this.state !== 'failed';
  }

  /** The link is unusable: drop it and join again after a backoff, or give up. */
  private linkBroken(reason: string): void {
    if (!this.isActive()) return;
    console.warn(`vizit: connection lost (${reason}); reconnecting`);
    this.dropLink();
    // The remote media arrived over the old peer connection and is gone with it.
    this.setRemoteStream(null);
    this.setState('reconnecting');

    const now = Date.now();
    if (this.recovery === null) this.recovery = { since: now, attempts: 0, timer: undefined };
    const recovery = this.recovery;
    if (now - recovery.since > RECONNECT_GIVE_UP_MS) {
      this.fail(TEXT.reconnectGaveUp);
      return;
    }
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** recovery.attempts, BACKOFF_MAX_MS);
    recovery.attempts += 1;
    clearTimeout(recovery.timer);
    recovery.timer = setTimeout(() => this.openLink(), delay);
  }

  private retryNow(): void {
    if (this.recovery === null || !this.isActive() || this.link !== null) return;
    clearTimeout(this.recovery.timer);
    this.openLink();
  }

  private stopRecovery(): void {
    if (this.recovery !== null) clearTimeout(this.recovery.timer);
    this.recovery = null;
  }

  /** Stop for good with `text`: `failed`, or `ended` when nothing went wrong (another tab took over). */
  private fail(text: string, state: 'failed' | 'ended' = 'failed'): void {
    this.stopScreenShare();
    this.dropLink();
    this.stopRecovery();
    this.setRemote(null);
    this.view.setNotice(text);
    this.setState(state);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.view.setState(state);
  }

  // ---- signaling -----------------------------------------------------------------------------

  private send(message: ClientMessage): void {
    this.link?.signaling.send(message);
  }

  private handleMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'joined':
        this.handleJoined(message);
        break;
      case 'resumed':
        this.handleResumed(message.resumeToken, message.resumeGraceMs);
        break;
      case 'answer':
        this.enqueueSdp((pc) => this.handleAnswer(pc, message.sdp));
        break;
      case 'offer':
        this.enqueueSdp((pc) => this.handleOffer(pc, message.sdp));
        break;
      case 'participantJoined':
        if (isPerson(message.participant)) this.setRemote(message.participant);
        break;
      case 'participantLeft':
        if (this.remote !== null && this.remote.participantId === message.participantId) {
          const left = { name: this.remote.name, reason: message.reason };
          this.remote = null;
          this.setRemoteStream(null);
          this.view.setRemoteScreen(null);
          this.view.setRemoteParticipant(null, left);
        }
        break;
      case 'qualityChanged':
        if (this.remote !== null && this.remote.participantId === message.participantId) {
          this.remote.quality = message.level;
          this.view.setQuality(this.quality.said, message.level);
        }
        break;
      case 'audioOnlyChanged':
        if (this.remote !== null && this.remote.participantId === message.participantId) {
          this.remote.audioOnly = message.on;
          this.view.setAudioOnly(this.audioOnly.on, message.on);
        }
        break;
      case 'screenShareChanged':
        if (this.remote !== null && this.remote.participantId === message.participantId) {
          this.remote.screenSharing = message.sharing;
          if (!message.sharing) this.view.setRemoteScreen(null);
        }
        break;
      case 'muteChanged':
        if (this.remote !== null && this.remote.participantId === message.participantId) {
          if (message.kind === 'audio') this.remote.audioMuted = message.muted;
          else this.remote.videoMuted = message.muted;
          this.view.setRemoteMuted(message.kind, message.muted);
        }
        break;
      case 'pong':
        break; // the signaling client already counts any frame as a sign of life
      case 'roomClosed':
        if (message.reason === 'serverShutdown') {
          this.view.setNotice(TEXT.serverRestarting);
          this.linkBroken('the server is shutting down');
        } else {
          this.stopScreenShare();
          this.dropLink();
          this.stopRecovery();
          this.setRemote(null);
          this.view.setNotice(TEXT.roomClosed);
          this.setState('ended');
        }
        break;
      case 'recording':
        this.recording = message;
        this.showRecording();
        break;
      case 'codecMismatch':
        this.handleCodecMismatch(message);
        break;
      case 'waitingRoom': {
        // However long the doctor takes is not a broken link.
        const link = this.link;
        if (link !== null) {
          clearTimeout(link.linkTimer);
          link.linkTimer = undefined;
        }
        this.stopRecovery();
        this.view.setLobbyStart(message.startsAt);
        this.setState('waiting');
        break;
      }
      case 'waiting':
        this.view.setWaitingList(message.participants);
        break;
      case 'error':
        this.handleError(message.code, message.message);
        break;
    }
  }

  private handleJoined(message: JoinedMessage): void {
    const link = this.link;
    if (link === null || link.pc !== null) return;
    if (link.linkTimer === undefined) {
      // Admitted from the waiting room: the media must now connect in time.
      this.armLinkTimer(link);
      this.setState('connecting');
    }
    // The server lists who waits afresh after `joined`, if anyone does.
    this.view.setWaitingList([]);
    link.resume = message.resumeToken === '' ? null : { token: message.resumeToken, graceMs: message.resumeGraceMs };
    this.iceServers = message.iceServers;
    this.setRemote(message.participants.find(isPerson) ?? null);
    this.me = { participantId: message.participantId, role: message.role };
    this.showRecording();
    // The new session on the server starts unmuted: restate what the user chose before the drop.
    for (const kind of ['audio', 'video'] as const) {
      if (this.muted[kind]) this.send({ type: 'mute', kind, muted: true });
    }
    // A Room that ended while we were away forgot our consent: restate it (a no-op otherwise).
    if (this.consent) this.send({ type: 'recordingConsent', consent: true });
    if (this.screen !== null) this.send({ type: 'screenShare', sharing: true });
    // A new session: our link is judged afresh (with video: the new session sends it).
    this.quality = { said: null, seen: null };
    this.inbound = { received: 0, lost: 0 };
    this.audioOnly.on = false;
    this.audioOnly.goodSince = null;
    this.view.setAudioOnly(false, this.remote?.audioOnly ?? false);
    this.frames = { decoded: 0, still: 0, frozen: false };
    this.view.setRemoteFrozen(false);
    link.pc = this.createPeerConnection(link);
  }

  /**
   * A track the other party cannot decode. Ours: send it again in a codec they take (only those
   * in our codec preferences, then a new offer), or say why it cannot be done. Theirs: say so;
   * their page switches.
   */
  private handleCodecMismatch(m: CodecMismatchMessage): void {
    const me = this.me?.participantId;
    console.warn(`vizit: ${m.kind} from ${m.sender} is ${m.codec}; ${m.receiver} takes ${m.receiverAccepts.join(', ')}`);
    if (m.receiver === me) {
      this.view.setNotice(TEXT.codecMine(m.kind));
      this.codecNotice = true;
      return;
    }
    if (m.sender !== me) return;
    this.enqueueSdp(async (pc) => {
      const transceiver = pc.getTransceivers().find((t) => t.sender.track?.kind === m.kind && t.direction !== 'stopped');
      const preferences = codecsFor(m.kind, m.receiverAccepts);
      if (transceiver === undefined || preferences.length === 0) {
        this.view.setNotice(TEXT.codecTheirs(m.kind));
        return;
      }
      transceiver.setCodecPreferences(preferences);
      await this.makeOffer(pc);
    });
  }

  private handleError(code: string, detail: string): void {
    console.warn(`vizit: server error ${code}: ${detail}`);
    if (FATAL_NO_RETRY.has(code)) {
      this.view.setRejoinAllowed(!NO_REJOIN.has(code));
      // The same person joined from another device or tab: the call goes on there.
      this.fail(errorText(code), code === 'replaced' ? 'ended' : 'failed');
    } else if (FATAL_RETRY.has(code)) {
      if (code === 'serverShutdown') this.view.setNotice(TEXT.serverRestarting);
      this.linkBroken(`server error ${code}`);
    } else if (code === 'resumeFailed') {
      // The server no longer has the session (the grace ran out): join anew.
      this.linkBroken('the session could not be resumed');
    } else if (code === 'recordingRefused' || code === 'notWaiting' || code === 'forbidden') {
      this.view.setNotice(errorText(code));
    } else if (code === 'badSdp') {
      // Our offer was refused and the session stays as it was: leave have-local-offer so the
      // server's own offers can be taken again.
      this.enqueueSdp(async (pc) => {
        if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      });
    }
    // Other non-fatal codes (badMessage, noPendingOffer, …) leave the session as it was.
  }

  // ---- WebRTC --------------------------------------------------------------------------------

  private createPeerConnection(link: Link): RTCPeerConnection {
    // The SFU is ICE-lite and its candidates are in its SDP; a TURN server, when the clinic has
    // one, is for networks that let no UDP through (or only through a proxy or TLS).
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      iceServers: this.iceServers,
      iceTransportPolicy: this.relayOnly ? 'relay' : 'all',
    });
    // Always a data channel, so the first offer has a transport even with no camera or microphone.
    link.channel = pc.createDataChannel('vizit');
    for (const track of this.local.getTracks()) pc.addTrack(track, this.local);
    // After the camera: the other page takes the later video track for the screen.
    this.screenTransceiver = null;
    this.remoteVideo.clear();
    if (this.screen !== null) this.sendScreen(pc, this.screen);

    pc.onnegotiationneeded = () => {
      this.enqueueSdp((current) => this.makeOffer(current));
    };
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      // A null candidate or an empty string means end of candidates; the server ignores it anyway.
      if (c === null || c.candidate === '' || !this.isCurrent(link.id)) return;
      this.send(c.sdpMid === null ? { type: 'candidate', candidate: c.candidate } : {
        type: 'candidate',
        candidate: c.candidate,
        sdpMid: c.sdpMid,
      });
    };
    pc.ontrack = (ev) => {
      if (this.isCurrent(link.id)) this.addRemoteTrack(ev.track);
    };
    pc.onconnectionstatechange = () => {
      if (this.isCurrent(link.id)) this.handlePcState(link, pc, pc.connectionState);
    };
    return pc;
  }

  private handlePcState(link: Link, pc: RTCPeerConnection, state: RTCPeerConnectionState): void {
    switch (state) {
      case 'connected':
        clearTimeout(link.linkTimer);
        clearTimeout(link.graceTimer);
        clearTimeout(link.restartTimer);
        link.graceTimer = undefined;
        link.restartTimer = undefined;
        this.stopRecovery();
        if (this.state === 'reconnecting') this.view.setNotice(null);
        this.setState('connected');
        break;
      case 'disconnected':
        this.setState('reconnecting');
        clearTimeout(link.graceTimer);
        link.graceTimer = setTimeout(() => {
          link.graceTimer = undefined;
          if (this.isCurrent(link.id) && pc.connectionState !== 'connected') this.restartIce(link, pc);
        }, DISCONNECTED_GRACE_MS);
        break;
      case 'failed':
        // iOS Safari may go to `failed` without `disconnected` first.
        this.setState('reconnecting');
        this.restartIce(link, pc);
        break;
      default:
        break; // new, connecting, closed
    }
  }

  /**
   * Run one SDP step after the previous ones, on the current link's peer connection. A step that
   * throws is logged: the link timer or ICE state will recover the call if it matters.
   */
  private enqueueSdp(step: (pc: RTCPeerConnection) => Promise<void>): void {
    const link = this.link;
    if (link === null) return;
    link.sdpChain = link.sdpChain.then(async () => {
      if (!this.isCurrent(link.id) || link.pc === null) return;
      try {
        await step(link.pc);
      } catch (e) {
        console.warn('vizit: SDP step failed', e);
      }
    });
  }

  private async makeOffer(pc: RTCPeerConnection): Promise<void> {
    // Negotiation is needed again once stable; the browser will fire the event then.
    if (pc.signalingState !== 'stable') return;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const sdp = pc.localDescription?.sdp;
    if (sdp !== undefined) this.send({ type: 'offer', sdp });
  }

  private async handleAnswer(pc: RTCPeerConnection, sdp: string): Promise<void> {
    if (pc.signalingState !== 'have-local-offer') {
      console.warn(`vizit: ignoring an answer in signaling state ${pc.signalingState}`);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
  }

  private async handleOffer(pc: RTCPeerConnection, sdp: string): Promise<void> {
    // Collision: our offer is unanswered. The server yields, answers ours and offers again later.
    if (pc.signalingState === 'have-local-offer') return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const local = pc.localDescription?.sdp;
    if (local !== undefined) this.send({ type: 'answer', sdp: local });
  }

  // ---- remote party --------------------------------------------------------------------------

  private setRemote(participant: Participant | null): void {
    this.remote = participant === null ? null : { ...participant };
    if (participant === null) this.setRemoteStream(null);
    if (participant === null || !participant.screenSharing) this.view.setRemoteScreen(null);
    this.view.setRemoteParticipant(this.remote);
    this.view.setQuality(this.quality.said, this.remote?.quality ?? null);
    this.view.setAudioOnly(this.audioOnly.on, this.remote?.audioOnly ?? false);
  }

  /**
   * Collect the remote tracks into one stream we own, one track per kind. The SFU puts each track
   * in a stream named after its participant, but building our own keeps audio and video together
   * even if a track comes without a stream, and lets us clear it when the party leaves.
   */
  private addRemoteTrack(track: MediaStreamTrack): void {
    if (track.kind === 'video') {
      let role = this.remoteVideo.get(track);
      if (role === undefined) {
        const camera = [...this.remoteVideo].some(([t, r]) => r === 'camera' && t.readyState === 'live');
        role = this.remote?.screenSharing === true && camera ? 'screen' : 'camera';
        this.remoteVideo.set(track, role);
      }
      if (role === 'screen') {
        this.view.setRemoteScreen(new MediaStream([track]));
        return;
      }
    }
    let stream = this.remoteStream;
    if (stream === null) {
      stream = new MediaStream();
      this.remoteStream = stream;
    }
    if (stream.getTracks().includes(track)) return;
    for (const old of stream.getTracks()) {
      if (old.kind === track.kind) stream.removeTrack(old);
    }
    stream.addTrack(track);
    track.addEventListener('ended', () => this.remoteStream?.removeTrack(track));
    // Media arrives (again): a codec notice about the other party's track is out of date.
    track.addEventListener('unmute', () => {
      if (this.codecNotice) this.view.setNotice(null);
      this.codecNotice = false;
    });
    this.view.setRemoteStream(stream);
  }

  private setRemoteStream(stream: MediaStream | null): void {
    this.remoteStream = stream;
    this.view.setRemoteStream(stream);
  }

  private tracks(kind: TrackKind): MediaStreamTrack[] {
    return kind === 'audio' ? this.local.getAudioTracks() : this.local.getVideoTracks();
  }
}

/** Helpers of a codec (retransmission, redundancy, error correction), not codecs of their own. */
const CODEC_HELPERS = new Set(['rtx', 'red', 'ulpfec', 'flexfec-03']);

/**
 * This browser's codec preferences for sending `kind` only in `accepted` (SDP names, e.g. H264):
 * the capabilities it can both send and receive of those codecs, with their helpers; empty if it
 * sends none of them.
 */
function codecsFor(kind: TrackKind, accepted: string[]): RTCRtpCodec[] {
  const name = (c: RTCRtpCodec): string => c.mimeType.slice(c.mimeType.indexOf('/') + 1).toLowerCase();
  const wanted = new Set(accepted.map((c) => c.toLowerCase()));
  const sendable = new Set((RTCRtpSender.getCapabilities(kind)?.codecs ?? []).map(name));
  // Preferences are checked against what the browser receives (the transceiver is sendrecv).
  const receivable = RTCRtpReceiver.getCapabilities(kind)?.codecs ?? [];
  const chosen = receivable.filter((c) => wanted.has(name(c)) && sendable.has(name(c)));
  if (chosen.length === 0) return [];
  return [...chosen, ...receivable.filter((c) => CODEC_HELPERS.has(name(c)))];
}
