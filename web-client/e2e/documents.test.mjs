// Documents on the consultations page, as people use them, in Debian's Chromium on a desktop and a
// phone: a patient fills in the questionnaire assigned on booking (a refused submission first,
// then a complete one), the doctor reads the answers on the consultation and the patient sees
// that they were read; the patient asks to delete their documents and the clinic admin answers
// (a refusal needs a reason), and the patient sees the answer. Every page is checked with
// axe-core, for sideways scrolling, and photographed into target/e2e-screens.
//
// Run like the other e2e tests (see consultations.test.mjs), inside a network namespace.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  VIEWPORTS,
  api,
  byTestId,
  checkPage,
  createClinic,
  launchBrowser,
  paidConsultation,
  startVizit,
  until,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 120_000;
/** The sandbox on a port of its own (payments have 18190, messengers 18191). */
const SANDBOX = '127.0.0.1:18192';
const COMPLAINT = 'Сухой кашель третий день, по ночам сильнее';

/** The consultations page signed in with `session`, handed over in the fragment as the portal does. */
async function signedIn(browser, kind, base, session) {
  const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU' });
  const page = await context.newPage();
  await page.goto(`${base}/consultations#session=${session}`);
  await byTestId(page, 'consultations-section').waitFor({ state: 'visible' });
  return { context, page };
}

describe('questionnaires and deletion requests on the page', { timeout: TEST_TIMEOUT * 3 }, () => {
  let server;
  let browser;
  let doctorId;

  before(async () => {
    server = await startVizit({ VIZIT_SANDBOX__LISTEN: SANDBOX });
    doctorId = await createClinic(server.env);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const kind of Object.keys(VIEWPORTS)) {
    test(
      `a patient fills in the questionnaire and the doctor reads it (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const { consultationId, patientSession, doctorSession } = await paidConsultation(server.base, doctorId);
        const { context, page } = await signedIn(browser, kind, server.base, patientSession);

        // The symptoms questionnaire is assigned on booking (the outbox may take a moment).
        const item = page.locator('[data-testid="questionnaire"]');
        await until('the questionnaire is listed', async () => {
          if ((await item.count()) === 1) return true;
          await byTestId(page, 'refresh').click();
          return false;
        }, 30_000, 500);
        assert.equal((await item.locator('[data-testid="questionnaire-status"]').textContent()).trim(), 'Не заполнена');
        await checkPage(page, `questionnaire-list-${kind}`);

        // Submitting with nothing answered: the required questions say so, nothing is sent.
        await item.getByRole('button', { name: 'Заполнить' }).click();
        const form = item.locator('[data-testid="questionnaire-form"]');
        await form.waitFor({ state: 'visible' });
        await form.getByRole('button', { name: 'Отправить врачу' }).click();
        const errors = form.locator('[data-testid="answer-error"]:visible');
        await until('the required questions are marked', async () => (await errors.count()) === 2);
        await checkPage(page, `questionnaire-errors-${kind}`);

        // Answered as a person would: the complaint, when it started, the temperature with a comma.
        await form.getByLabel('Что вас беспокоит? (обязательно)').fill(COMPLAINT);
        await form.getByRole('radio', { name: '1–3 дня назад' }).check();
        await form.getByLabel('Температура тела, °C').fill('37,4');
        await form.getByRole('button', { name: 'Сохранить черновик' }).click();
        await page.locator('[data-testid="questionnaire"][data-status="draft"]').waitFor({ state: 'visible' });
        await page.getByRole('button', { name: 'Изменить ответы' }).click();
        await page.getByRole('button', { name: 'Отправить врачу' }).click();
        const sent = page.locator('[data-testid="questionnaire"][data-status="submitted"]');
        await sent.waitFor({ state: 'visible' });
        assert.match(await sent.locator('[data-testid="questionnaire-saved"]').textContent(), /отправлена врачу/);
        await checkPage(page, `questionnaire-sent-${kind}`);

        // The doctor opens the patient's questionnaires on the consultation.
        const doctor = await signedIn(browser, kind, server.base, doctorSession);
        const row = doctor.page.locator(`[data-testid="consultation"][data-consultation-id="${consultationId}"]`);
        await row.getByRole('button', { name: 'Анкеты пациента' }).click();
        const answers = row.locator('[data-testid="doctor-questionnaire"][data-kind="symptoms"]');
        await answers.getByText(COMPLAINT).waitFor({ state: 'visible' });
        assert.match(await answers.textContent(), /37\.4/);
        assert.match(await answers.textContent(), /1–3 дня назад/);
        await checkPage(doctor.page, `questionnaire-doctor-${kind}`);
        // …and asks for the anamnesis too.
        await row.getByRole('button', { name: /анамнез/ }).click();
        await row.locator('[data-testid="doctor-questionnaire"][data-kind="anamnesis"]').waitFor({ state: 'visible' });
        await doctor.context.close();

        // The patient sees it was read, and the new questionnaire.
        await byTestId(page, 'refresh').click();
        await until('the read shows', async () => {
          await byTestId(page, 'refresh').click();
          return (await page.locator('[data-testid="questionnaire-read"]').count()) === 1;
        }, 20_000, 500);
        await page.locator('[data-testid="questionnaire"][data-status="assigned"]').waitFor({ state: 'visible' });
        const mine = await api(server.base, 'GET', '/me/questionnaires', { token: patientSession, status: 200 });
        const symptoms = mine.items.find((q) => q.kind === 'symptoms');
        assert.deepEqual(symptoms.answers, { complaints: COMPLAINT, since: '1–3 дня назад', temperature: 37.4 });
        await context.close();
      }),
    );

    test(
      `a patient asks to delete their documents and the admin answers (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const { adminToken, patientSession } = await paidConsultation(server.base, doctorId);
        const { context, page } = await signedIn(browser, kind, server.base, patientSession);
        const section = byTestId(page, 'deletion-section');
        await section.waitFor({ state: 'visible' });
        await section.getByLabel('Комментарий для клиники (необязательно)').fill('Прошу удалить мои анкеты');
        await section.getByRole('button', { name: 'Попросить удалить документы' }).click();
        const mine = page.locator('[data-testid="deletion-request"][data-status="pending"]');
        await mine.waitFor({ state: 'visible' });
        assert.match(await mine.locator('[data-testid="request-due"]').textContent(), /^Ответ до /);
        assert.equal(await byTestId(page, 'deletion-form').isVisible(), false, 'one request at a time');
        await checkPage(page, `deletion-patient-${kind}`);

        const admin = await signedIn(browser, kind, server.base, adminToken);
        const request = admin.page.locator('[data-testid="admin-deletion-request"][data-status="pending"]').first();
        await request.waitFor({ state: 'visible' });
        assert.match(await request.textContent(), /Прошу удалить мои анкеты/);
        await checkPage(admin.page, `deletion-admin-${kind}`);
        // A refusal needs a reason.
        await request.getByRole('button', { name: 'Отказать' }).click();
        await request.locator('[data-testid="request-error"]').waitFor({ state: 'visible' });
        await request
          .getByLabel('Причина или комментарий для пациента')
          .fill('Медицинская документация хранится 25 лет (323-ФЗ, ст. 22)');
        await request.getByRole('button', { name: 'Отказать' }).click();
        await until('the answer is saved', async () =>
          /пациент уведомлён/.test((await byTestId(admin.page, 'deletion-admin-status').textContent()) ?? ''),
        );
        await checkPage(admin.page, `deletion-admin-answered-${kind}`);
        await admin.context.close();

        await page.reload();
        const answered = page.locator('[data-testid="deletion-request"][data-status="refused"]');
        await answered.waitFor({ state: 'visible' });
        assert.match(await answered.locator('[data-testid="request-answer"]').textContent(), /25 лет/);
        assert.equal(await byTestId(page, 'deletion-form').isVisible(), true, 'a new request may be made');
        await checkPage(page, `deletion-patient-answered-${kind}`);
        await context.close();
      }),
    );
  }
});
