// The messenger side of notifications as a demo user sees it: `vizit serve` in its default demo
// mode (the built-in MAX and edna Pulse sandboxes), Debian's Chromium, a desktop and a phone
// viewport. The demo consultation's notices reach the demo patient's phone on the edna sandbox,
// where opening one reports it read; a patient links MAX through the bot's deep link, gets the
// next notice in the chat and presses «Прочитано». Every page is checked with axe-core and
// photographed into target/e2e-screens.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  VIEWPORTS,
  api,
  byTestId,
  checkPage,
  chooseDoctor,
  createStaff,
  launchBrowser,
  startVizit,
  until,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 120_000;
/** The sandbox on a fixed port of its own (the payment test has 18190). */
const SANDBOX = '127.0.0.1:18191';

const ADMIN = { role: 'admin', email: 'admin@clinic.test', name: 'Админ' };
const ADMIN_PASSWORD = 'admin-password-1';

async function sandboxState(stand) {
  const res = await fetch(`http://${SANDBOX}/sandbox/${stand}/state.json`);
  assert.equal(res.status, 200);
  return res.json();
}

describe('notifications by messenger in the demo', { timeout: TEST_TIMEOUT * 3 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startVizit({ VIZIT_SANDBOX__LISTEN: SANDBOX });
    await createStaff(server.env, ADMIN, ADMIN_PASSWORD);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const kind of Object.keys(VIEWPORTS)) {
    test(
      `the demo patient's phone shows the notices, and reading one reports it read (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const before = (await sandboxState('edna')).messages.length;
        const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU' });
        const page = await context.newPage();
        // The demo page books and confirms a consultation for a new demo patient with a phone,
        // and links the sandbox pages where its notices arrive.
        await page.goto(`${server.base}/demo`);
        await checkPage(page, `demo-page-${kind}`);
        await byTestId(page, 'demo-edna').click();
        await page.waitForURL(`http://${SANDBOX}/sandbox/edna`);
        let message;
        await until('the confirmation reaches the phone', async () => {
          const list = (await sandboxState('edna')).messages.slice(before);
          message = list.find((m) => m.text.includes('подтверждена') && m.statuses.includes('DELIVERED'));
          return message !== undefined;
        }, 30_000, 200);
        assert.ok(!message.text.includes('Пациент'), `no name in the text: ${message.text}`);
        await page.reload();
        await checkPage(page, `edna-index-${kind}`);
        await page.getByRole('link', { name: `+${message.phone}` }).click();
        const card = page.locator('[data-testid="message"]', { hasText: 'подтверждена' });
        await card.waitFor({ state: 'visible' });
        await checkPage(page, `edna-phone-${kind}`);
        await card.getByRole('button', { name: 'Прочитать в мессенджере' }).click();
        await page.locator('[data-testid="message"]', { hasText: 'READ' }).first().waitFor({ state: 'visible' });
        await checkPage(page, `edna-phone-read-${kind}`);
        await context.close();
      }),
    );

    test(
      `a patient links MAX and presses «Прочитано» under the next notice (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU' });
        const page = await context.newPage();
        await page.goto(`${server.base}/consultations`);
        await byTestId(page, 'demo-login').click();
        await byTestId(page, 'booking-section').waitFor({ state: 'visible' });
        const token = await page.evaluate(() => sessionStorage.getItem('vizit.session'));
        assert.ok(token, 'the page keeps a session');
        // The patient's notification settings: MAX not linked yet; «Подключить MAX» gives the
        // bot's deep link.
        const settings = byTestId(page, 'notify-section');
        await settings.waitFor({ state: 'visible' });
        await settings.locator('[data-testid="notify-channel"][data-channel="max"]').waitFor({ state: 'visible' });
        assert.match(
          await settings.locator('[data-testid="notify-channel"][data-channel="max"]').textContent(),
          /Не подключено/,
        );
        await checkPage(page, `notify-settings-${kind}`);
        await settings.getByRole('button', { name: 'Подключить MAX' }).click();
        const open = settings.getByRole('link', { name: 'Открыть бота в MAX' });
        await open.waitFor({ state: 'visible' });
        const url = await open.getAttribute('href');
        assert.match(url, new RegExp(`^http://${SANDBOX.replace(/\./g, '\\.')}/max-app/`));

        // The deep link opens the bot's start page; «Начать» links the account.
        await page.goto(url);
        await byTestId(page, 'start').waitFor({ state: 'visible' });
        await checkPage(page, `max-start-${kind}`);
        await byTestId(page, 'start').click();
        await page.waitForURL(/\/sandbox\/max\/chats\/\d+$/);
        const chat = page.url();
        await until('the bot greets', async () => {
          await page.reload();
          return (await page.locator('[data-testid="message"]', { hasText: 'MAX подключён' }).count()) === 1;
        }, 30_000, 300);
        const me = await api(server.base, 'GET', '/me/notifications', { token, status: 200 });
        assert.ok(me.maxLinkedAt, JSON.stringify(me));
        assert.equal(me.order[0], 'max');

        // The next notice goes by MAX: the patient books a consultation.
        await page.goto(`${server.base}/consultations`);
        await byTestId(page, 'booking-section').waitFor({ state: 'visible' });
        await chooseDoctor(page, { name: 'Иванова Анна Петровна' });
        await byTestId(page, 'book-slot').first().waitFor({ state: 'visible', timeout: 30_000 });
        await byTestId(page, 'book-slot').first().click();
        await byTestId(page, 'book-confirm').click();
        await page.locator('[data-testid="consultation"][data-status="booked"]').first().waitFor({ state: 'visible' });

        await page.goto(chat);
        const notice = page.locator('[data-testid="message"]', { hasText: 'Вы записаны' });
        await until('the booking notice reaches the chat', async () => {
          await page.reload();
          return (await notice.count()) === 1;
        }, 30_000, 300);
        await checkPage(page, `max-chat-${kind}`);
        const answered = (await sandboxState('max')).answers.length;
        await notice.getByRole('button', { name: 'Прочитано' }).click();
        await until('the press is answered', async () => (await sandboxState('max')).answers.length > answered, 30_000, 200);
        const answers = (await sandboxState('max')).answers;
        assert.equal(answers.at(-1).notification, 'Спасибо, отмечено как прочитанное.');

        // The patient's page says MAX is linked and first.
        await page.goto(`${server.base}/consultations`);
        await byTestId(page, 'max-linked').waitFor({ state: 'visible' });
        const first = page.locator('[data-testid="notify-channel"]').first();
        assert.equal(await first.getAttribute('data-channel'), 'max');

        // The clinic admin's log: the booking notice went by MAX and was read by the button;
        // delivery is "not reported" (MAX cannot), not a made-up time.
        const { token: adminToken } = await api(server.base, 'POST', '/auth/login', {
          body: { email: ADMIN.email, password: ADMIN_PASSWORD },
          status: 200,
        });
        const adminPage = await context.newPage();
        await adminPage.goto(`${server.base}/consultations#session=${adminToken}`);
        const log = byTestId(adminPage, 'notices-section');
        await log.waitFor({ state: 'visible' });
        const booked = log.locator('[data-testid="notice"][data-event="patient.booked"]', {
          has: adminPage.locator('[data-testid="delivery"][data-channel="max"] [data-testid="delivery-read"]', {
            hasNotText: '—',
          }),
        });
        await until('the read booking notice is in the log', async () => {
          if ((await booked.count()) > 0) return true;
          await byTestId(adminPage, 'refresh').click();
          return false;
        }, 30_000, 500);
        const delivery = booked.first().locator('[data-testid="delivery"][data-channel="max"]');
        assert.equal((await delivery.locator('[data-testid="delivery-delivered"]').textContent()).trim(), 'канал не сообщает');
        await checkPage(adminPage, `notices-admin-${kind}`);
        await context.close();
      }),
    );
  }
});
