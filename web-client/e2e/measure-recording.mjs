// Measures one recorded consultation through the real Vizit server: a standalone script, not a test.
//
//   node e2e/measure-recording.mjs [call-seconds] [--s3] [--window=seconds]
//       call-seconds  how long the recorded call lasts (default 300: a 5-minute consultation)
//       --s3          recordings go to a SeaweedFS started here (default: the local folder)
//       --window      length of each CPU measuring window (default 60)
//
// Run it like the e2e tests, in a network namespace that has only loopback, as root:
//   unshare -n bash -c 'ip link set lo up; cd web-client && node e2e/measure-recording.mjs 300'
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (say which build you measured).
//
// A clinic, a paid consultation, two Chromium pages (fake camera and microphone) in the call.
// Then: the server's CPU (utime + stime of every thread, GStreamer's included) over a window
// without recording, both consent, the same window while recording — the difference is the live
// path's cost for one recorded room; the call goes on to `call-seconds` of recording, both hang
// up, and the time from the hang-up to each recording being `stored` is read from the API.
// Prints a Markdown table on stdout; progress goes to stderr.

import { performance } from 'node:perf_hooks';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BIN,
  CLOCK_TICKS_PER_SECOND,
  S3_SETTINGS,
  byTestId,
  cpuTicks,
  createClinic,
  dumpDiagnostics,
  joinBoth,
  launchBrowser,
  openCallPage,
  api,
  paidConsultation,
  recordingsOf,
  startSeaweed,
  startVizit,
  stopSeaweed,
  until,
  waitState,
  hangUp,
} from './harness.mjs';

const args = process.argv.slice(2);
const s3 = args.includes('--s3');
const windowArg = args.find((a) => a.startsWith('--window='));
const windowSeconds = windowArg ? Number(windowArg.slice('--window='.length)) : 60;
const callArg = args.find((a) => !a.startsWith('--'));
const callSeconds = callArg === undefined ? 300 : Number(callArg);
if (!(callSeconds > 0) || !(windowSeconds > 0) || windowSeconds > callSeconds) {
  console.error('usage: node e2e/measure-recording.mjs [call-seconds] [--s3] [--window=seconds]  (window ≤ call)');
  process.exit(2);
}

const progress = (msg) => console.error(`measure-recording: ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let vizit;
let browser;
let weed;
let weedDir;

async function cpuOver(seconds) {
  const t0 = performance.now();
  const c0 = await cpuTicks(vizit.child.pid);
  await sleep(seconds * 1000);
  const c1 = await cpuTicks(vizit.child.pid);
  const elapsed = (performance.now() - t0) / 1000;
  return ((c1 - c0) / CLOCK_TICKS_PER_SECOND / elapsed) * 1000; // ms of CPU per second
}

async function measure() {
  if (s3) {
    weedDir = await mkdtemp(join(tmpdir(), 'vizit-measure-s3-'));
    weed = await startSeaweed(weedDir);
  }
  vizit = await startVizit(s3 ? S3_SETTINGS : {});
  const doctorId = await createClinic(vizit.env);
  const { adminToken, consultationId, patientSession, doctorSession } = await paidConsultation(vizit.base, doctorId);
  browser = await launchBrowser({ handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });
  const joinToken = async (session) =>
    (await api(vizit.base, 'POST', `/consultations/${consultationId}/join`, { token: session, status: 200 })).token;
  const patient = await openCallPage(browser, vizit.base, 'patient', await joinToken(patientSession));
  const doctor = await openCallPage(browser, vizit.base, 'doctor', await joinToken(doctorSession));
  await joinBoth(patient, doctor);
  await sleep(5000); // past the start-up (bandwidth ramp, keyframes)

  progress(`${windowSeconds} s without recording`);
  const baseline = await cpuOver(windowSeconds);

  await byTestId(patient, 'recording-consent').click({ timeout: 15_000 });
  await byTestId(doctor, 'recording-consent').click({ timeout: 15_000 });
  const recordingSince = performance.now();
  await until('both files recording', async () => {
    const list = await recordingsOf(vizit.base, adminToken, consultationId);
    return list.filter((r) => r.status === 'recording').length === 2;
  });
  progress(`${windowSeconds} s recording`);
  const recording = await cpuOver(windowSeconds);

  const left = callSeconds * 1000 - (performance.now() - recordingSince);
  progress(`the call goes on for ${Math.round(left / 1000)} s more`);
  if (left > 0) await sleep(left);
  await hangUp(doctor);
  await hangUp(patient);
  const hungUp = performance.now();
  await Promise.all([waitState(patient, 'ended'), waitState(doctor, 'ended')]);
  progress('hung up; waiting for the recordings to be stored');

  let participantsStored = null;
  let last = [];
  await until(
    () => `three stored recordings (last: ${JSON.stringify(last.map((r) => [r.kind, r.status, r.error]))})`,
    async () => {
      last = await recordingsOf(vizit.base, adminToken, consultationId);
      if (last.some((r) => r.status === 'failed')) throw new Error(`a recording failed: ${JSON.stringify(last)}`);
      const parts = last.filter((r) => r.kind === 'participant');
      if (participantsStored === null && parts.length === 2 && parts.every((r) => r.status === 'stored')) {
        participantsStored = performance.now() - hungUp;
      }
      return last.length === 3 && last.every((r) => r.status === 'stored');
    },
    30 * 60_000,
    200,
  );
  const allStored = performance.now() - hungUp;
  const composite = last.find((r) => r.kind === 'composite');
  const parts = last.filter((r) => r.kind === 'participant');

  const mb = (b) => `${(b / 1_048_576).toFixed(1)} MiB`;
  const rows = [
    ['recorded call', `${(composite.durationMs / 1000).toFixed(1)} s (composite), storage ${s3 ? 'S3 (SeaweedFS)' : 'local folder'}`],
    ['server CPU, call without recording', `${baseline.toFixed(1)} ms/s (${(baseline / 10).toFixed(1)} % of one core)`],
    ['server CPU, same call recorded', `${recording.toFixed(1)} ms/s (${(recording / 10).toFixed(1)} % of one core)`],
    ['live path per recorded room', `${(recording - baseline).toFixed(1)} ms of CPU per second (${((recording - baseline) / 10).toFixed(2)} % of one core)`],
    ['hang-up → both participant files stored', `${(participantsStored / 1000).toFixed(2)} s`],
    ['hang-up → composite stored (all three)', `${(allStored / 1000).toFixed(2)} s`],
    ['sizes', `${parts.map((r) => `${r.participantRole} ${mb(r.sizeBytes)}`).join(', ')}, composite ${mb(composite.sizeBytes)}`],
  ];
  const build = BIN.includes('/release/') ? 'release build' : BIN.includes('/debug/') ? 'debug build' : 'build';
  console.log(`Vizit recording measurement (server: ${BIN}, ${build}; ${windowSeconds} s CPU windows)\n`);
  console.log('| metric | value |');
  console.log('|---|---|');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    await browser?.close().catch(() => {});
    await vizit?.stop().catch(() => {});
    await stopSeaweed(weed);
    if (weedDir) await rm(weedDir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

try {
  await measure();
} catch (e) {
  console.error(`measure-recording: failed: ${e && e.stack ? e.stack : e}`);
  dumpDiagnostics(console.error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
