/**
 * Local camera and microphone: getting whatever the browser allows, and a microphone level meter.
 *
 * A consultation must not fail because one device is missing: a patient with a broken camera can
 * still talk, and one who denied everything can still see and hear the doctor. So acquisition
 * falls back step by step and reports why each missing device is missing.
 */

/** Why a device is not in the local stream. */
export type MediaProblem =
  /** The user or the browser's site settings refused access. */
  | 'denied'
  /** No such device is connected. */
  | 'notFound'
  /** The device exists but another application holds it (or the OS refused). */
  | 'busy'
  /** The page is not on HTTPS, so the browser hides `navigator.mediaDevices` entirely. */
  | 'insecure'
  | 'unknown';

export interface LocalMedia {
  /** The tracks we got; may be empty (receive-only). */
  stream: MediaStream;
  camera: MediaProblem | null;
  microphone: MediaProblem | null;
}

const AUDIO: MediaTrackConstraints = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};

const VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30 },
  facingMode: 'user',
};

export function classifyMediaError(error: unknown): MediaProblem {
  const name = error instanceof DOMException || error instanceof Error ? error.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError': // old Chrome
      return 'denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError': // old Chrome
    case 'OverconstrainedError':
      return 'notFound';
    case 'NotReadableError':
    case 'TrackStartError': // old Chrome
    case 'AbortError':
      return 'busy';
    default:
      return 'unknown';
  }
}

/**
 * Ask for camera and microphone together, then for each alone, and settle for what works.
 * Never rejects.
 */
export async function acquireLocalMedia(): Promise<LocalMedia> {
  const devices = typeof navigator.mediaDevices === 'undefined' ? undefined : navigator.mediaDevices;
  if (devices === undefined || typeof devices.getUserMedia !== 'function') {
    return { stream: new MediaStream(), camera: 'insecure', microphone: 'insecure' };
  }

  let bothError: unknown;
  try {
    return { stream: await devices.getUserMedia({ audio: AUDIO, video: VIDEO }), camera: null, microphone: null };
  } catch (e) {
    bothError = e;
  }

  let audioError: unknown;
  try {
    const stream = await devices.getUserMedia({ audio: AUDIO });
    // The microphone alone works, so the camera is what made the combined request fail.
    return { stream, camera: classifyMediaError(bothError), microphone: null };
  } catch (e) {
    audioError = e;
  }

  try {
    const stream = await devices.getUserMedia({ video: VIDEO });
    return { stream, camera: null, microphone: classifyMediaError(audioError) };
  } catch (videoError) {
    return {
      stream: new MediaStream(),
      camera: classifyMediaError(videoError),
      microphone: classifyMediaError(audioError),
    };
  }
}

/**
 * Shows how loud the microphone is, so the user sees before joining that it picks up sound.
 * Reports a level in 0..1 (about -60 dBFS … 0 dBFS) once per animation frame.
 */
export class MicLevelMeter {
  private readonly context: AudioContext;
  private readonly analyser: AnalyserNode;
  private readonly samples: Float32Array<ArrayBuffer>;
  private frame = 0;
  private level = 0;
  private readonly resumeOnGesture = (): void => {
    void this.context.resume();
  };

  constructor(track: MediaStreamTrack, private readonly onLevel: (level: number) => void) {
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    // Not connected to the destination: we only measure, we must not play the user back to himself.
    source.connect(this.analyser);
    // Autoplay rules may start the context suspended until the user touches the page.
    if (this.context.state === 'suspended') {
      document.addEventListener('pointerdown', this.resumeOnGesture, { once: true });
      document.addEventListener('keydown', this.resumeOnGesture, { once: true });
    }
    this.tick();
  }

  stop(): void {
    cancelAnimationFrame(this.frame);
    document.removeEventListener('pointerdown', this.resumeOnGesture);
    document.removeEventListener('keydown', this.resumeOnGesture);
    void this.context.close();
    this.onLevel(0);
  }

  private tick(): void {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const target = Math.min(1, Math.max(0, (db + 60) / 60));
    // Rise at once, fall slowly: a jumpy bar is hard to read.
    this.level = target > this.level ? target : this.level * 0.9 + target * 0.1;
    this.onLevel(this.level);
    this.frame = requestAnimationFrame(() => this.tick());
  }
}
