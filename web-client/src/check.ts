/**
 * The pre-call check's tests beyond the camera preview and the microphone meter: a test sound
 * for the speakers, and a short test call through this server (`POST /api/v1/connection-check`
 * gives two join tokens of a fresh room): one peer sends our camera and microphone, the other
 * receives them, and the connection's statistics give the bitrate both ways, the loss and the
 * round trip, and a verdict.
 */

import { CallSession, type CallView } from './call';
import type { ConnectionState } from './messages';

/** A two-note chime of ~1 s through the default output. Resolves when it has played. */
export async function playTestSound(): Promise<void> {
  const Ctx = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (Ctx === undefined) throw new Error('no Web Audio');
  const ctx = new Ctx();
  try {
    await ctx.resume();
    const start = ctx.currentTime + 0.05;
    for (const [i, freq] of [660, 880].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      const t = start + i * 0.45;
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(0.3, t + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.001, t + 0.42);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t);
      osc.stop(t + 0.45);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    void ctx.close();
  }
}

export type Verdict = 'good' | 'fair' | 'poor' | 'failed';

export interface CheckResult {
  verdict: Verdict;
  /** Kilobits per second sent up to the server and received down from it. */
  upKbps: number;
  downKbps: number;
  /** Share of packets lost, 0–1 (the worse direction). */
  loss: number;
  /** Round trip to the server, milliseconds; null if not measured. */
  rttMs: number | null;
  /** How the media went: `udp`, `tcp` (ICE-TCP) or `relay` (through the TURN server). */
  path: 'udp' | 'tcp' | 'relay' | null;
}

/** How long the test call may take to connect, and how long it measures. */
const CONNECT_TIMEOUT_MS = 20_000;
const MEASURE_MS = 6_000;

/**
 * The verdict from what was measured; loss and round trip as the call page's quality badge
 * judges them. The bitrate is what the browser chose to send in its first seconds (it starts
 * low and climbs), not the link's capacity: it only fails a link that hardly carries media.
 */
export function verdictOf(r: Omit<CheckResult, 'verdict'>): Verdict {
  const rtt = r.rttMs ?? 0;
  if (r.loss > 0.1 || rtt > 800 || Math.min(r.upKbps, r.downKbps) < 30) return 'poor';
  if (r.loss > 0.03 || rtt > 300) return 'fair';
  return 'good';
}

/** A call page that shows nothing: the test call's peers report only their state. */
class QuietView implements CallView {
  state: ConnectionState = 'connecting';
  constructor(private readonly onState: () => void) {}
  setState(state: ConnectionState): void {
    this.state = state;
    this.onState();
  }
  setRemoteParticipant(): void {}
  setRemoteMuted(): void {}
  setRemoteStream(): void {}
  setLocalMuted(): void {}
  setNotice(): void {}
  setRejoinAllowed(): void {}
  setRecording(): void {}
  setLobbyStart(): void {}
  setWaitingList(): void {}
  setRemoteScreen(): void {}
  setScreenSharing(): void {}
  setQuality(): void {}
  setAudioOnly(): void {}
  setRemoteFrozen(): void {}
}

interface Totals {
  bytesOut: number;
  bytesIn: number;
  packetsIn: number;
  lostIn: number;
  lossOut: number;
  rtt: number | null;
  path: CheckResult['path'];
}

async function totals(sender: RTCPeerConnection, receiver: RTCPeerConnection): Promise<Totals> {
  const t: Totals = { bytesOut: 0, bytesIn: 0, packetsIn: 0, lostIn: 0, lossOut: 0, rtt: null, path: null };
  const [up, down] = await Promise.all([sender.getStats(), receiver.getStats()]);
  const candidates = new Map<string, { type?: string; protocol?: string }>();
  up.forEach((r) => {
    if (r.type === 'local-candidate') candidates.set(r.id, { type: r.candidateType, protocol: r.protocol });
  });
  up.forEach((r) => {
    if (r.type === 'outbound-rtp') t.bytesOut += r.bytesSent ?? 0;
    if (r.type === 'remote-inbound-rtp' && typeof r.fractionLost === 'number') t.lossOut = Math.max(t.lossOut, r.fractionLost);
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
      if (typeof r.currentRoundTripTime === 'number') t.rtt = r.currentRoundTripTime * 1000;
      const local = candidates.get(r.localCandidateId);
      if (local !== undefined) t.path = local.type === 'relay' ? 'relay' : local.protocol === 'tcp' ? 'tcp' : 'udp';
    }
  });
  down.forEach((r) => {
    if (r.type === 'inbound-rtp') {
      t.bytesIn += r.bytesReceived ?? 0;
      t.packetsIn += r.packetsReceived ?? 0;
      t.lostIn += Math.max(0, r.packetsLost ?? 0);
    }
  });
  return t;
}

/**
 * Run the test call with `local`'s tracks (cloned: the preview keeps its own). `progress`
 * hears the steps. Never throws: a call that does not connect is the verdict `failed`.
 */
export async function checkConnection(local: MediaStream, progress: (step: 'connecting' | 'measuring') => void): Promise<CheckResult> {
  const failed: CheckResult = { verdict: 'failed', upKbps: 0, downKbps: 0, loss: 0, rttMs: null, path: null };
  let tokens: string[];
  try {
    const res = await fetch('/api/v1/connection-check', { method: 'POST', cache: 'no-store' });
    if (!res.ok) return failed;
    tokens = ((await res.json()) as { tokens: string[] }).tokens;
  } catch {
    return failed;
  }
  const [sendToken, receiveToken] = tokens;
  if (sendToken === undefined || receiveToken === undefined) return failed;
  const sent = new MediaStream(local.getTracks().map((t) => t.clone()));
  let wake = (): void => {};
  const changed = (): void => wake();
  const views = [new QuietView(changed), new QuietView(changed)] as const;
  const sender = new CallSession(sendToken, sent, views[0]);
  const receiver = new CallSession(receiveToken, new MediaStream(), views[1]);
  try {
    progress('connecting');
    sender.start();
    receiver.start();
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    const connected = (): boolean => views.every((v) => v.state === 'connected');
    while (!connected()) {
      if (Date.now() > deadline || views.some((v) => v.state === 'failed' || v.state === 'ended')) return failed;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 250);
      });
    }
    const pcs = [sender.peerConnection(), receiver.peerConnection()];
    const [up, down] = pcs;
    if (!up || !down) return failed;
    // Media flows once the receiver's consumers are negotiated: wait for the first bytes.
    const flowing = Date.now() + 10_000;
    while ((await totals(up, down)).bytesIn === 0) {
      if (Date.now() > flowing) return failed;
      await new Promise((r) => setTimeout(r, 200));
    }
    progress('measuring');
    const a = await totals(up, down);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, MEASURE_MS));
    const b = await totals(up, down);
    const seconds = (performance.now() - t0) / 1000;
    const packets = b.packetsIn - a.packetsIn;
    const lost = b.lostIn - a.lostIn;
    const measured = {
      upKbps: Math.round(((b.bytesOut - a.bytesOut) * 8) / 1000 / seconds),
      downKbps: Math.round(((b.bytesIn - a.bytesIn) * 8) / 1000 / seconds),
      loss: Math.max(b.lossOut, packets + lost > 0 ? lost / (packets + lost) : 0),
      rttMs: b.rtt === null ? null : Math.round(b.rtt),
      path: b.path,
    };
    return { verdict: verdictOf(measured), ...measured };
  } finally {
    sender.hangup();
    receiver.hangup();
    for (const t of sent.getTracks()) t.stop();
  }
}
