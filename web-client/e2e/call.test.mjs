// End-to-end: the real Vizit server, Debian's Chromium with fake camera and microphone, two
// people in one Room. Asserts what a user would notice: connected, picture decoded, sound
// received, mute shown on the other side, hang-up seen by the other side.
//
// Run inside a network namespace that has only loopback (docs: shared/TESTING.md), as root:
//   unshare -n bash -c 'ip link set lo up; cd web-client && node --test e2e/'
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (relative to web-client/).
// Server, browser and page helpers live in harness.mjs (shared with measure-call.mjs).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SCREENS,
  byTestId,
  nft,
  consoleLog,
  serverLog,
  launchBrowser,
  makeToken,
  openCallPage,
  readSenderReports,
  readOutbound,
  received,
  remoteVideoCleared,
  senderTrackEnabled,
  startVizit,
  until,
  waitState,
  withDiagnostics,
  hangUp,
} from './harness.mjs';

const TEST_TIMEOUT = 60_000;

const DOCTOR = 'Доктор Иванова';
const PATIENT = 'Пациент Петров';

// ---- the tests -----------------------------------------------------------------------------

describe('Vizit call page with the real server and Chromium', () => {
  let server; // startVizit()
  let env;
  let base;
  let browser;
  let doctor; // page
  let patient; // page
  let callUp = false;

  const openCall = (label, token, options) => openCallPage(browser, base, label, token, options);

  /**
   * A doctor's page and a patient's (`patientOptions`, `doctorOptions` for openCallPage) in a new
   * room, both joined and connected; the pages' labels end in `-${label}`.
   */
  const startCall = async (label, patientOptions = {}, doctorOptions = {}) => {
    const room = `e2e-${randomBytes(6).toString('hex')}`;
    const [doctorToken, patientToken] = await Promise.all([
      makeToken(env, room, DOCTOR, 'doctor'),
      makeToken(env, room, PATIENT, 'patient'),
    ]);
    const [doc, pat] = await Promise.all([
      openCall(`doctor-${label}`, doctorToken, doctorOptions),
      openCall(`patient-${label}`, patientToken, patientOptions),
    ]);
    await byTestId(doc, 'join').click();
    await byTestId(pat, 'join').click();
    await Promise.all([waitState(doc, 'connected'), waitState(pat, 'connected')]);
    return { room, doc, pat, patientToken };
  };

  /** Both hang up and their pages close. */
  const endCall = async (doc, pat) => {
    await hangUp(pat);
    await hangUp(doc);
    await Promise.all([doc.context().close(), pat.context().close()]);
  };


  before(
    withDiagnostics(async () => {
      server = await startVizit();
      ({ env, base } = server);
      browser = await launchBrowser();
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
  });

  test(
    'doctor and patient see and hear each other',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = `e2e-${randomBytes(6).toString('hex')}`;
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(env, room, DOCTOR, 'doctor'),
        makeToken(env, room, PATIENT, 'patient'),
      ]);
      [doctor, patient] = await Promise.all([openCall('doctor', doctorToken), openCall('patient', patientToken)]);

      await byTestId(doctor, 'join').click();
      await waitState(doctor, 'connected');
      await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 10_000 });

      const joinedAt = Date.now();
      await byTestId(patient, 'join').click();
      await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);

      // Polls until video is decoded, audio arrives and the <video> has a size; notes when the
      // first frame was decoded (50 ms polling resolution).
      const media = async (page, label) => {
        let firstFrameMs = null;
        let last = null;
        const r = await until(
          () => `${label}: remote video frames, audio packets and a video size (last: ${JSON.stringify(last)})`,
          async () => {
            const s = await received(page);
            last = s;
            if (firstFrameMs === null && s.framesDecoded > 0) firstFrameMs = Date.now() - joinedAt;
            return s.framesDecoded > 0 && s.audioPackets > 0 && s.videoWidth > 0 ? s : null;
          },
          45_000,
        );
        return { firstFrameMs, ...r };
      };
      const [p, d] = await Promise.all([media(patient, 'patient'), media(doctor, 'doctor')]);
      console.log(
        `first decoded remote frame after the patient's Join click: patient ${p.firstFrameMs} ms, ` +
          `doctor ${d.firstFrameMs} ms (remote video ${p.videoWidth}px / ${d.videoWidth}px wide)`,
      );

      await until('the doctor sees the patient\'s name', async () =>
        (await byTestId(doctor, 'remote-name').textContent()).includes(PATIENT),
      );
      await until('the patient sees the doctor\'s name', async () =>
        (await byTestId(patient, 'remote-name').textContent()).includes(DOCTOR),
      );
      assert.ok(await byTestId(doctor, 'waiting').isHidden(), 'the doctor still sees "waiting" with the patient in');
      assert.match(await byTestId(patient, 'call-timer').textContent(), /^\d\d:\d\d$/);
      callUp = true;
    }),
  );

  test(
    "the browser gets the SFU's sender reports, with the packets really sent",
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      assert.ok(callUp, 'needs the call of the first test');
      // The SFU sends media past str0m (media.fast_forwarding) and writes the sender info of
      // str0m's reports from the packets it sent: Chromium must accept the resealed SRTCP and
      // see counts that match what it received. Video is reported every second, audio every
      // five.
      for (const [page, label] of [[doctor, 'doctor'], [patient, 'patient']]) {
        let last = null;
        const reports = await until(
          () => `${label}: sender reports on audio and video (last: ${JSON.stringify(last)})`,
          async () => {
            last = await page.evaluate(readSenderReports);
            const ok = ['audio', 'video'].every((k) => last[k] && last[k].reportsSent >= 2);
            return ok ? last : null;
          },
          30_000,
        );
        for (const kind of ['audio', 'video']) {
          const r = reports[kind];
          // The last report was made before the packets that arrived since it: it counts at most
          // what arrived or was lost by now, and most of it.
          assert.ok(
            r.packetsSent <= r.packetsReceived + r.packetsLost + 5,
            `${label} ${kind}: the report counts ${r.packetsSent} sent, ${r.packetsReceived} arrived`,
          );
          assert.ok(
            r.packetsSent >= r.packetsReceived / 2,
            `${label} ${kind}: the report counts ${r.packetsSent} sent, ${r.packetsReceived} arrived`,
          );
          // Its NTP time is the SFU's clock, this same machine's: within a few seconds of now.
          assert.ok(
            Math.abs(r.remoteTimestamp - r.now) < 10_000,
            `${label} ${kind}: report time ${r.remoteTimestamp} vs now ${r.now}`,
          );
        }
      }
    }),
  );

  test(
    "the browser's bandwidth estimate rises on the SFU's congestion feedback, and the SFU reports what it received",
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      assert.ok(callUp, 'needs the call of the first test');
      // The SFU opens received media past str0m (media.fast_receiving) and sends the
      // transport-wide congestion control feedback and the receiver reports itself. Chromium
      // starts its estimate at 300 kbit/s and raises it only on that feedback; feedback it
      // does not accept leaves it low (84 kbit/s and 320×180 video, when the SFU's feedback named
      // no SSRC of the browser). Receiver reports give the round trip time.
      for (const [page, label] of [[doctor, 'doctor'], [patient, 'patient']]) {
        let last = null;
        await until(
          () => `${label}: an estimate above 1 Mbit/s and round trips measured on audio and video (last: ${JSON.stringify(last)})`,
          async () => {
            last = await page.evaluate(readOutbound);
            return (
              last.availableOutgoingBitrate > 1_000_000 &&
              ['audio', 'video'].every((k) => last.remote[k] && last.remote[k].reports >= 2 && last.remote[k].packetsLost === 0)
            );
          },
          30_000,
        );
      }
    }),
  );

  test(
    'mute is shown on the other side',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      for (const [kind, button, badge] of [
        ['audio', 'toggle-mic', 'remote-audio-muted'],
        ['video', 'toggle-camera', 'remote-video-muted'],
      ]) {
        assert.ok(await byTestId(doctor, badge).isHidden(), `${badge} shown before any mute`);

        await byTestId(patient, button).click();
        await byTestId(doctor, badge).waitFor({ state: 'visible', timeout: 10_000 });
        assert.equal(await byTestId(patient, button).getAttribute('aria-pressed'), 'true');
        assert.equal(await patient.evaluate(senderTrackEnabled, kind), false, `patient's ${kind} track still enabled`);

        await byTestId(patient, button).click();
        await byTestId(doctor, badge).waitFor({ state: 'hidden', timeout: 10_000 });
        assert.equal(await byTestId(patient, button).getAttribute('aria-pressed'), 'false');
        assert.equal(await patient.evaluate(senderTrackEnabled, kind), true, `patient's ${kind} track still disabled`);
      }
    }, { needs: () => callUp }),
  );

  test(
    'hang up removes the participant',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      await hangUp(patient);
      await waitState(patient, 'ended', 10_000);

      await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 15_000 });
      await until('the doctor\'s remote video to be cleared', () => doctor.evaluate(remoteVideoCleared), 15_000);
      await until('the doctor\'s page to say who left', async () =>
        (await byTestId(doctor, 'call-notice').textContent()).includes(PATIENT),
      );
      assert.equal(await doctor.evaluate(() => window.vizit.state()), 'connected', 'the doctor lost the call');
    }, { needs: () => callUp }),
  );

  test(
    'the patient comes back three times: the doctor sees them again on the same m-lines',
    { timeout: TEST_TIMEOUT * 2 },
    withDiagnostics(async () => {
      // What the doctor's peer connection has: transceivers and m-lines of the remote SDP.
      const shape = () =>
        doctor.evaluate(() => {
          const pc = window.vizit.pc();
          return {
            transceivers: pc.getTransceivers().length,
            mLines: pc.remoteDescription.sdp.split('\r\n').filter((l) => l.startsWith('m=')).length,
          };
        });
      let first = null;
      for (let round = 1; round <= 3; round++) {
        const before = (await received(doctor)).framesDecoded;
        // «Подключиться снова» reloads the page (the token is kept in the tab): Join again.
        await byTestId(patient, 'rejoin').click();
        await byTestId(patient, 'join').waitFor({ state: 'visible', timeout: 20_000 });
        await until('Join enabled again', () => byTestId(patient, 'join').isEnabled(), 20_000);
        await byTestId(patient, 'join').click();
        await waitState(patient, 'connected');
        await byTestId(doctor, 'waiting').waitFor({ state: 'hidden', timeout: 15_000 });
        let last = null;
        await until(
          () => `round ${round}: the doctor decodes the patient's video again (before: ${before}, last: ${JSON.stringify(last)})`,
          async () => {
            last = await received(doctor);
            return last.framesDecoded > before + 10 && last.videoWidth > 0;
          },
          45_000,
        );
        const now = await shape();
        first ??= now;
        assert.deepEqual(now, first, `round ${round}: the doctor's session grew`);
        await hangUp(patient);
        await waitState(patient, 'ended', 10_000);
        await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 15_000 });
      }
      assert.equal(await doctor.evaluate(() => window.vizit.state()), 'connected', 'the doctor lost the call');
    }, { needs: () => callUp }),
  );

  test(
    'receive-only join works when the camera is not available',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = `e2e-${randomBytes(6).toString('hex')}`;
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(env, room, DOCTOR, 'doctor'),
        makeToken(env, room, PATIENT, 'patient'),
      ]);
      const [doc2, pat2] = await Promise.all([
        openCall('doctor-2', doctorToken),
        openCall('patient-2', patientToken, { denyMedia: true }),
      ]);

      await byTestId(pat2, 'media-warning').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await byTestId(pat2, 'media-warning').textContent(), /запрещён/);

      await byTestId(doc2, 'join').click();
      await byTestId(pat2, 'join').click();
      await Promise.all([waitState(doc2, 'connected'), waitState(pat2, 'connected')]);

      let last = null;
      await until(
        () => `the receive-only patient to decode the doctor's video (last: ${JSON.stringify(last)})`,
        async () => {
          const s = await received(pat2);
          last = s;
          return s.framesDecoded > 0 && s.videoWidth > 0;
        },
        45_000,
      );
      assert.ok(await byTestId(pat2, 'toggle-mic').isDisabled(), 'mic button enabled without a microphone');
      assert.equal(await pat2.evaluate(() => window.vizit.pc().getSenders().filter((s) => s.track).length), 0);
      await until('the doctor sees the receive-only patient', async () =>
        (await byTestId(doc2, 'remote-name').textContent()).includes(PATIENT),
      );

      await endCall(doc2, pat2);
    }),
  );

  test(
    "a receiver that takes only H.264 gets the other party's video once their page switches to it",
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      // The patient's browser answers the server's video lines with H.264 only (as a browser
      // without VP8 would); the doctor's Chromium sends VP8 first, as it does by default.
      const h264Only = () => {
        const answer = RTCPeerConnection.prototype.createAnswer;
        RTCPeerConnection.prototype.createAnswer = function (...args) {
          const h264 = RTCRtpReceiver.getCapabilities('video').codecs.filter((c) =>
            /^video\/(h264|rtx)$/i.test(c.mimeType),
          );
          for (const t of this.getTransceivers()) {
            if (t.receiver.track.kind === 'video' && t.sender.track === null) t.setCodecPreferences(h264);
          }
          return answer.apply(this, args);
        };
      };
      const { doc: doc3, pat: pat3 } = await startCall('3', { init: h264Only });

      // The codec of the video each page receives, and how many frames it decoded.
      const inboundVideo = (page) =>
        page.evaluate(async () => {
          const stats = await window.vizit.pc().getStats();
          let out = { codec: null, framesDecoded: 0 };
          stats.forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded ?? 0) > 0) {
              out = { codec: stats.get(r.codecId)?.mimeType ?? null, framesDecoded: r.framesDecoded };
            }
          });
          return out;
        });
      let last = null;
      await until(
        () => `the H.264-only patient to decode the doctor's video (last: ${JSON.stringify(last)})`,
        async () => {
          last = await inboundVideo(pat3);
          last.doctorSends = await doc3.evaluate(async () => {
            const stats = await window.vizit.pc().getStats();
            const out = [];
            stats.forEach((r) => {
              if (r.type === 'outbound-rtp' && r.kind === 'video') out.push(stats.get(r.codecId)?.mimeType ?? null);
            });
            return out;
          });
          return last.framesDecoded > 10;
        },
        45_000,
      );
      assert.equal(last.codec, 'video/H264');
      // The doctor was told, and switched: its page logged the mismatch.
      assert.ok(
        consoleLog.some((l) => l.startsWith('[doctor-3]') && l.includes('is VP8; ') && l.includes('takes H264')),
        "the doctor's page was not told of the mismatch",
      );
      // The doctor still gets the patient's video as the patient sends it.
      await until("the doctor decodes the patient's video", async () => (await inboundVideo(doc3)).framesDecoded > 10, 45_000);
      // The patient was told while the video could not arrive; the notice went when it did.
      assert.ok(
        consoleLog.some((l) => l.startsWith('[patient-3]') && l.includes('is VP8; ')),
        "the patient's page was not told of the mismatch",
      );
      assert.ok(!(await byTestId(pat3, 'call-notice').textContent()).includes('формате'), 'a stale codec notice');

      await endCall(doc3, pat3);
    }),
  );

  test(
    'the socket drops mid-call: the session resumes on a new one and the media never stops',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      // The page's sockets, so the test can drop one as a lost network would.
      const keepSockets = () => {
        const Native = window.WebSocket;
        window.__sockets = [];
        window.WebSocket = class extends Native {
          constructor(...args) {
            super(...args);
            window.__sockets.push(this);
          }
        };
      };
      const { doc: doc4, pat: pat4 } = await startCall('4', { init: keepSockets });
      await until('the doctor decodes the patient', async () => (await received(doc4)).framesDecoded > 10, 45_000);
      await pat4.evaluate(() => {
        window.__pc = window.vizit.pc();
      });

      const before = (await received(doc4)).framesDecoded;
      const droppedAt = Date.now();
      await pat4.evaluate(() => window.__sockets.at(-1).close());
      await until(
        'the patient resumes its session',
        () => consoleLog.some((l) => l.startsWith('[patient-4]') && l.includes('session resumed')),
        20_000,
      );
      console.log(`session resumed ${Date.now() - droppedAt} ms after the socket dropped`);
      await until('the doctor keeps decoding the patient', async () => (await received(doc4)).framesDecoded > before + 25, 20_000);
      // The same peer connection, a second socket, and nobody left.
      assert.equal(await pat4.evaluate(() => window.vizit.pc() === window.__pc), true, 'a new peer connection');
      assert.equal(await pat4.evaluate(() => window.__sockets.length), 2);
      assert.equal(await pat4.evaluate(() => window.vizit.state()), 'connected');
      assert.ok(await byTestId(doc4, 'waiting').isHidden(), 'the doctor was shown the patient leaving');
      assert.ok(
        !consoleLog.some((l) => l.startsWith('[patient-4]') && l.includes('reconnecting')),
        'the patient rejoined from scratch',
      );
      // The session is live on the new socket: a mute reaches the doctor.
      await byTestId(pat4, 'toggle-mic').click();
      await byTestId(doc4, 'remote-audio-muted').waitFor({ state: 'visible', timeout: 10_000 });

      await endCall(doc4, pat4);
    }),
  );

  test(
    'the media path is cut for 5 s, then the patient changes network: the call goes on in the same session',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { room, doc: doc5, pat: pat5 } = await startCall('5');
      for (const page of [doc5, pat5]) {
        await until('video decoded', async () => (await received(page)).framesDecoded > 10, 45_000);
        await page.evaluate(() => {
          window.__pc = window.vizit.pc();
        });
      }
      // The SFU's UDP port, from what the server printed.
      const port = server.mediaPort;
      const before = await Promise.all([doc5, pat5].map(async (p) => (await received(p)).framesDecoded));
      // Every datagram to or from the SFU is dropped (both pages; signaling is TCP and stays).
      await nft(
        // ICE over TCP too (on by default): a cut link carries nothing.
        `table inet cut {\n chain out {\n type filter hook output priority 0;\n udp dport ${port} drop\n udp sport ${port} drop\n` +
          ` tcp dport ${server.tcpPort} drop\n tcp sport ${server.tcpPort} drop\n }\n}\n`,
      );
      const cutAt = Date.now();
      let noticed;
      try {
        await until('a page notices the cut', async () => (await pat5.evaluate(() => window.vizit.state())) === 'reconnecting', 15_000, 100);
        noticed = Date.now() - cutAt;
        await new Promise((r) => setTimeout(r, Math.max(0, 5_000 - (Date.now() - cutAt))));
      } finally {
        await nft('delete table inet cut\n');
      }
      const restoredAt = Date.now();
      await Promise.all([waitState(doc5, 'connected', 20_000), waitState(pat5, 'connected', 20_000)]);
      await Promise.all(
        [doc5, pat5].map((p, i) =>
          until('video decoded again', async () => (await received(p)).framesDecoded > before[i] + 10, 20_000, 100),
        ),
      );
      console.log(
        `5 s cut: noticed after ${noticed} ms; both decoding again ${Date.now() - restoredAt} ms after the path came back`,
      );
      // Healed by ICE's own checks or by a restart, but in the same session: no rejoin.
      for (const [label, page] of [['doctor-5', doc5], ['patient-5', pat5]]) {
        assert.equal(await page.evaluate(() => window.vizit.pc() === window.__pc), true, `${label}: a new peer connection`);
        assert.ok(!consoleLog.some((l) => l.startsWith(`[${label}]`) && l.includes('reconnecting')), `${label}: rejoined from scratch`);
      }
      assert.ok(!serverLog.some((l) => l.includes(room) && l.includes('participant left')), 'a participant left the room');

      // A change of network: the patient's address stops working for good (its port is
      // blocked from now on). Only an ICE restart, with new candidates, gets the call back.
      const localPort = await pat5.evaluate(async () => {
        const stats = await window.vizit.pc().getStats();
        let port = null;
        stats.forEach((r) => {
          if (r.type === 'transport' && r.selectedCandidatePairId) {
            const pair = stats.get(r.selectedCandidatePairId);
            port = stats.get(pair.localCandidateId)?.port ?? null;
          }
        });
        return port;
      });
      assert.ok(localPort, 'no selected candidate pair on the patient');
      const again = (await received(doc5)).framesDecoded;
      // The pair may be UDP or ICE-TCP (an active TCP port of the browser's): block both.
      await nft(
        `table inet moved {\n chain out {\n type filter hook output priority 0;\n udp sport ${localPort} drop\n udp dport ${localPort} drop\n` +
          ` tcp sport ${localPort} drop\n tcp dport ${localPort} drop\n }\n}\n`,
      );
      const movedAt = Date.now();
      try {
        await until(
          'the patient restarts ICE',
          () => consoleLog.some((l) => l.startsWith('[patient-5]') && l.includes('restarting ICE')),
          20_000,
          100,
        );
        await waitState(pat5, 'connected', 20_000);
        await until('the doctor decodes the patient again', async () => (await received(doc5)).framesDecoded > again + 10, 20_000, 100);
        console.log(`network change: the doctor decodes the patient again ${Date.now() - movedAt} ms after the old address died`);
        assert.equal(await pat5.evaluate(() => window.vizit.pc() === window.__pc), true, 'a new peer connection after the restart');
        assert.ok(!consoleLog.some((l) => l.startsWith('[patient-5]') && l.includes('reconnecting')), 'rejoined from scratch');
        assert.ok(!serverLog.some((l) => l.includes(room) && l.includes('participant left')), 'a participant left the room');
      } finally {
        await nft('delete table inet moved\n');
      }

      await endCall(doc5, pat5);
    }),
  );

  test(
    'a 30 s outage: the page offers «Переподключиться», and both rejoin when the network is back',
    { timeout: TEST_TIMEOUT * 2 },
    withDiagnostics(async () => {
      const { doc: doc6, pat: pat6 } = await startCall('6');
      await until('video decoded', async () => (await received(doc6)).framesDecoded > 10, 45_000);
      const port = server.mediaPort;
      const httpPort = new URL(base).port;
      // Nothing gets through: neither media nor the pages' sockets (open or new).
      await nft(
        `table inet outage {\n chain out {\n type filter hook output priority 0;\n` +
          ` udp dport ${port} drop\n udp sport ${port} drop\n` +
          ` tcp dport ${server.tcpPort} drop\n tcp sport ${server.tcpPort} drop\n` +
          ` tcp dport ${httpPort} drop\n tcp sport ${httpPort} drop\n }\n}\n`,
      );
      const cutAt = Date.now();
      try {
        await waitState(pat6, 'reconnecting', 20_000);
        await byTestId(pat6, 'reconnect-now').waitFor({ state: 'visible', timeout: 25_000 });
        assert.equal(await byTestId(pat6, 'connection-state').textContent(), 'Переподключение…');
        await mkdir(SCREENS, { recursive: true });
        await pat6.screenshot({ path: join(SCREENS, 'call-reconnecting-desktop.png') });
        await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - cutAt))));
      } finally {
        await nft('delete table inet outage\n');
      }
      const backAt = Date.now();
      // The patient does not wait for the next attempt; the doctor's page retries by itself.
      await byTestId(pat6, 'reconnect-now').click();
      await Promise.all([waitState(doc6, 'connected', 30_000), waitState(pat6, 'connected', 30_000)]);
      // New peer connections (the old sessions were removed): their frames count from zero.
      await Promise.all(
        [doc6, pat6].map((p) => until('video decoded after the outage', async () => (await received(p)).framesDecoded > 10, 30_000, 100)),
      );
      console.log(`30 s outage: both decoding again ${Date.now() - backAt} ms after the network came back`);
      await until("the doctor sees the patient's name again", async () =>
        (await byTestId(doc6, 'remote-name').textContent()).includes(PATIENT),
      );
      assert.ok(await byTestId(pat6, 'reconnect-now').isHidden(), '«Переподключиться» still shown');

      await endCall(doc6, pat6);
    }),
  );

  test(
    'a tab replaced by the same person on another device says so and ends calmly',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { doc: doc7, pat: pat7, patientToken } = await startCall('7');
      await until('the doctor decodes the patient', async () => (await received(doc7)).framesDecoded > 10, 45_000);
      const before = (await received(doc7)).framesDecoded;
      const other = await openCall('patient-7-phone', patientToken);
      await byTestId(other, 'join').click();
      await waitState(other, 'connected');
      await waitState(pat7, 'ended', 15_000);
      assert.equal(await byTestId(pat7, 'connection-state').textContent(), 'Звонок завершён');
      assert.match(await byTestId(pat7, 'call-notice').textContent(), /Вы подключились с другого устройства/);
      await until(
        'the doctor decodes the patient on the new device',
        async () => (await received(doc7)).framesDecoded > before + 10,
        45_000,
      );
      assert.equal(await doc7.evaluate(() => window.vizit.state()), 'connected');
      await endCall(doc7, other);
      await pat7.context().close();
    }),
  );

  test(
    'the doctor shows the screen: the patient sees it large beside the camera, then it goes',
    { timeout: 3 * TEST_TIMEOUT },
    withDiagnostics(async () => {
      // Headless Chromium has no screen to capture: the page's getDisplayMedia gets a moving
      // 1280×720 picture, as the fake camera stands in for a camera.
      const fakeScreen = () => {
        navigator.mediaDevices.getDisplayMedia = async () => {
          const canvas = document.createElement('canvas');
          canvas.width = 1280;
          canvas.height = 720;
          const ctx = canvas.getContext('2d');
          let n = 0;
          setInterval(() => {
            n += 1;
            ctx.fillStyle = `hsl(${(n * 7) % 360} 50% 35%)`;
            ctx.fillRect(0, 0, 1280, 720);
            ctx.fillStyle = '#fff';
            ctx.font = '64px sans-serif';
            ctx.fillText(`Результаты анализов ${n}`, 80, 360);
          }, 100);
          return canvas.captureStream(10);
        };
      };
      const { doc, pat } = await startCall('screen', {}, { init: fakeScreen });
      const screen = () =>
        pat.evaluate(() => {
          const v = document.querySelector('[data-testid="remote-screen"]');
          return { shown: !v.hidden, width: v.videoWidth };
        });
      const transceivers = () => doc.evaluate(() => window.vizit.pc().getTransceivers().length);
      const share = byTestId(doc, 'toggle-screen');
      assert.equal(await share.isVisible(), true, 'a desktop browser offers to show the screen');

      await share.click();
      // A minute: on a busy machine the sender's bandwidth estimate gives a new stream little at first.
      await until('the patient sees the screen', async () => (await screen()).width === 1280, 60_000);
      // Both pictures keep coming: two video streams decoded, each past its first frames.
      const decoding = () =>
        pat.evaluate(async () => {
          const stats = await window.vizit.pc().getStats();
          let n = 0;
          stats.forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video' && r.framesDecoded > 5) n += 1;
          });
          return n;
        });
      await until('the camera and the screen are both decoded', async () => (await decoding()) >= 2, 60_000);
      assert.equal(await share.getAttribute('aria-pressed'), 'true');
      // The camera goes on, as a tile: its own track, not the screen's (both may be 1280 wide).
      const tracks = await pat.evaluate(() => {
        const track = (id) => document.querySelector(`[data-testid="${id}"]`).srcObject?.getVideoTracks()[0]?.id;
        return { camera: track('remote-video'), screen: track('remote-screen') };
      });
      assert.ok(tracks.camera && tracks.screen && tracks.camera !== tracks.screen, JSON.stringify(tracks));
      await mkdir(SCREENS, { recursive: true });
      await pat.screenshot({ path: join(SCREENS, 'call-screen-share-desktop.png') });
      const withScreen = await transceivers();

      await share.click();
      await until('the screen is gone', async () => !(await screen()).shown, 15_000);
      // Shown again: the same transceiver carries it, the SDP does not grow.
      await share.click();
      await until('the screen is back', async () => (await screen()).shown && (await screen()).width === 1280, 60_000);
      assert.equal(await transceivers(), withScreen);
      await endCall(doc, pat);
    }),
  );

  test(
    'a lossy link reads «плохая», falls back to audio only on both pages, and recovers once it heals',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      // The loss below is UDP's: ICE over TCP stays shut for the whole call, or Chromium may take
      // (or switch to, once UDP's checks start failing) the TCP pair, where nothing is lost.
      assert.ok(server.tcpPort, 'the server printed its ICE-TCP port');
      await nft(`table inet udponly {\n chain out {\n type filter hook output priority 0;\n tcp dport ${server.tcpPort} drop\n }\n}\n`);
      try {
        await lossyLink();
      } finally {
        await nft('delete table inet udponly\n').catch(() => {});
      }
    }),
  );

  /** The lossy-link test's body (a real call; its own ICE-TCP block is around it). */
  async function lossyLink() {
    const { doc, pat } = await startCall('quality');
    const level = (page, id) => byTestId(page, id).getAttribute('data-level');
    const shown = (page, id) => byTestId(page, id).isVisible();
    await until('a clean link reads good', async () => (await level(doc, 'my-quality')) === 'good', 20_000);
    assert.equal(await byTestId(doc, 'their-quality').isVisible(), false, 'a good link is not worth a word');
    assert.equal(await shown(doc, 'audio-only'), false);
    // A third of the datagrams to the SFU lost, both ways of both parties' uplinks.
    await nft(
      `table inet lossy {\n chain out {\n type filter hook output priority 0;\n` +
        ` udp dport ${server.mediaPort} numgen random mod 100 < 33 drop\n }\n}\n`,
    );
    let healed;
    try {
      for (const page of [doc, pat]) {
        await until('the lossy link reads poor', async () => (await level(page, 'my-quality')) === 'poor', 30_000);
        await until('the other party reads poor', async () => (await level(page, 'their-quality')) === 'poor', 30_000);
      }
      assert.match(await byTestId(pat, 'their-quality').textContent(), /Связь собеседника: плохая/);
      // Too weak for video: each page stops its video, the server forwards none, both are told.
      for (const page of [doc, pat]) {
        await until('audio only, announced', async () => (await shown(page, 'audio-only')) && (await shown(page, 'their-audio-only')), 30_000);
      }
      assert.match(await byTestId(pat, 'audio-only').textContent(), /видео приостановлено, идёт только звук/);
      assert.match(await byTestId(pat, 'their-audio-only').textContent(), /только звук/);
      await mkdir(SCREENS, { recursive: true });
      await pat.screenshot({ path: join(SCREENS, 'call-audio-only-desktop.png') });
      // In flight when it stopped: let it arrive, then nothing more.
      await new Promise((r) => setTimeout(r, 1_500));
      const [d0, p0] = await Promise.all([received(doc), received(pat)]);
      await new Promise((r) => setTimeout(r, 3_000));
      const [d1, p1] = await Promise.all([received(doc), received(pat)]);
      assert.equal(d1.framesDecoded, d0.framesDecoded, 'the doctor decodes no video while audio only');
      assert.equal(p1.framesDecoded, p0.framesDecoded, 'the patient decodes no video while audio only');
      assert.ok(d1.audioPackets > d0.audioPackets && p1.audioPackets > p0.audioPackets, 'the voice goes on');
    } finally {
      await nft('delete table inet lossy\n').catch(() => {});
      healed = Date.now();
    }
    for (const page of [doc, pat]) {
      await until('the healed link reads good', async () => (await level(page, 'my-quality')) === 'good', 30_000);
      await until('the other party is good again', async () => !(await byTestId(page, 'their-quality').isVisible()), 30_000);
    }
    // Video comes back by itself once the link has stayed good (10 s), on both pages.
    const before = await Promise.all([received(doc), received(pat)]);
    for (const [i, page] of [doc, pat].entries()) {
      await until('video again', async () => (await received(page)).framesDecoded > before[i].framesDecoded + 10, 40_000);
      await until('the notices are gone', async () => !(await shown(page, 'audio-only')) && !(await shown(page, 'their-audio-only')), 10_000);
    }
    console.log(`# video back ${((Date.now() - healed) / 1000).toFixed(1)} s after the link healed`);
    await endCall(doc, pat);
  }

  test(
    'a picture that stops is shown as frozen while the call stays connected, and moving again after',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { doc, pat } = await startCall('frozen');
      await until('both decode video', async () => (await received(doc)).framesDecoded > 10 && (await received(pat)).framesDecoded > 10, 20_000);
      // Only the big datagrams from the SFU dropped: video stops, the voice and ICE go on.
      await nft(
        `table inet still {\n chain out {\n type filter hook output priority 0;\n` +
          ` udp sport ${server.mediaPort} meta length > 500 drop\n }\n}\n`,
      );
      try {
        for (const page of [doc, pat]) {
          await until('the frozen picture is said', async () => byTestId(page, 'remote-frozen').isVisible(), 20_000);
          assert.equal(await byTestId(page, 'connection-state').getAttribute('data-state'), 'connected');
        }
        assert.match(await byTestId(pat, 'remote-frozen').textContent(), /Изображение собеседника остановилось/);
      } finally {
        await nft('delete table inet still\n').catch(() => {});
      }
      for (const page of [doc, pat]) {
        await until('the picture moves again', async () => !(await byTestId(page, 'remote-frozen').isVisible()), 30_000);
      }
      await endCall(doc, pat);
    }),
  );

  test(
    'the server counts the media it received',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      // Prometheus text format: `name{labels} value`; sum every series of the counter.
      // A sample line is `name{labels} value [timestamp]`.
      const values = text
        .split('\n')
        .map((line) => /^vizit_packets_in_total(?:\{[^}]*\})?\s+(\S+)/.exec(line))
        .filter((m) => m !== null)
        .map((m) => Number(m[1]));
      assert.ok(values.length > 0, `no vizit_packets_in_total in /metrics:\n${text.slice(0, 2000)}`);
      const total = values.reduce((a, b) => a + b, 0);
      assert.ok(total > 0, `vizit_packets_in_total is ${total}`);
    }),
  );
});
