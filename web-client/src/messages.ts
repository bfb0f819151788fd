/**
 * Every text the user reads, in Russian, in one place. The server's `error.message` is for
 * engineers; the page picks its own text by `code`.
 */

import type { LocalMedia, MediaProblem } from './media';
import type { LeaveReason } from './protocol';

export type ConnectionState = 'connecting' | 'waiting' | 'connected' | 'reconnecting' | 'failed' | 'ended';

export const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: 'Подключение…',
  waiting: 'Зал ожидания',
  connected: 'Подключено',
  reconnecting: 'Переподключение…',
  failed: 'Ошибка соединения',
  ended: 'Звонок завершён',
};

export const TEXT = {
  noToken:
    'В ссылке нет ключа доступа к звонку. Откройте ссылку из приглашения целиком, ' +
    'без изменений (скопируйте её полностью, если переносили вручную).',
  askingMedia: 'Запрашиваем доступ к камере и микрофону…',
  ready: 'Проверьте изображение и звук, затем нажмите «Присоединиться».',
  waiting: 'Ожидаем собеседника…',
  lobby: 'Врач скоро подключит вас. Не закрывайте страницу: звонок начнётся здесь.',
  /** Until the consultation's booked start. */
  lobbyCountdown: (ms: number): string => {
    const minutes = Math.floor(ms / 60_000);
    const seconds = Math.floor((ms % 60_000) / 1000);
    return `До начала консультации ${minutes}:${String(seconds).padStart(2, '0')}`;
  },
  lobbyDue: 'Время консультации наступило.',
  waitingListTitle: 'В зале ожидания',
  /** To the doctor, alone in the call while a patient waits. */
  patientWaits: 'Пациент ждёт в зале ожидания: нажмите «Впустить», чтобы начать консультацию.',
  shareScreen: 'Показать экран',
  /** The link's quality, ours and the other party's. */
  quality: {
    good: 'хорошая',
    fair: 'средняя',
    poor: 'плохая',
  },
  myQuality: 'Связь',
  theirQuality: 'Связь собеседника',
  /** Our link carries only audio. */
  audioOnly: 'Слабая связь: видео приостановлено, идёт только звук. Видео включится само, когда связь улучшится.',
  /** The other party's does. */
  theirAudioOnly: 'У собеседника слабая связь: только звук',
  stopSharing: 'Остановить показ',
  admit: 'Впустить',
  /** How long someone has waited. */
  waitedFor: (ms: number): string => {
    const minutes = Math.floor(ms / 60_000);
    return minutes < 1 ? 'ждёт меньше минуты' : `ждёт ${minutes} мин`;
  },
  cameraOff: 'Камера выключена',
  noCamera: 'Без камеры',
  youHungUp: 'Вы завершили звонок.',
  reconnectGaveUp:
    'Не удалось восстановить соединение. Проверьте подключение к интернету и откройте ссылку ' +
    'на звонок ещё раз.',
  roomClosed: 'Консультация завершена или отменена — звонок закрыт.',
  serverRestarting: 'Сервер перезапускается, подключимся снова через несколько секунд…',
  autoplayBlocked: 'Браузер не включил звук собеседника автоматически.',
  /** Our track is in a codec the other party cannot take, and this browser has none it takes. */
  codecTheirs: (kind: 'audio' | 'video'): string =>
    `Устройство собеседника не может показать ${kind === 'video' ? 'ваше видео' : 'передать ваш звук'}: ` +
    'ваш браузер не поддерживает ни один подходящий формат. Попробуйте подключиться из Chrome, ' +
    'Firefox или Safari последней версии.',
  /** The other party's track is in a codec this browser did not accept. */
  codecMine: (kind: 'audio' | 'video'): string =>
    `Ваш браузер не может ${kind === 'video' ? 'показать видео' : 'воспроизвести звук'} собеседника в ` +
    'его формате. Ждём, пока устройство собеседника переключится на подходящий; если не поможет — ' +
    'откройте звонок в Chrome, Firefox или Safari последней версии.',
} as const;

/** Texts of the recording panel. */
export const RECORDING_TEXT = {
  indicator: 'Идёт запись',
  ask:
    'Клиника записывает видеоконсультации с согласия обоих участников. Запись хранится в ' +
    'клинике вместе с медицинской документацией, доступна только её администрации и не ' +
    'передаётся третьим лицам. Согласие можно отозвать в любой момент — запись остановится.',
  consent: 'Даю согласие',
  decline: 'Не даю согласия',
  declined: 'Запись не ведётся: вы не дали согласия.',
  /** To the doctor, when the patient said no. */
  theyDeclined: 'Пациент не дал согласия на запись: консультация не записывается.',
  /** The recording waits for the party who left. */
  paused: 'Запись приостановлена: собеседник вышел из звонка. Она продолжится, когда собеседник вернётся.',
  waitingOther: 'Вы согласились на запись. Ожидаем согласия собеседника.',
  otherConsented: 'Собеседник согласен на запись консультации.',
  waitingDoctor: 'Оба участника согласны. Запись начнёт врач.',
  readyDoctor: 'Оба участника согласны на запись.',
  recording: 'Консультация записывается. Оба участника дали согласие.',
  withdraw: 'Отозвать моё согласие',
  start: 'Начать запись',
  stop: 'Остановить запись',
  changeMind: 'Передумали? Дать согласие',
  refused: 'Запись не начата: нужно согласие обоих участников.',
} as const;

/** Text for an `error` from the server, by its stable `code`. */
export function errorText(code: string): string {
  switch (code) {
    case 'tokenExpired':
      return 'Ссылка на звонок устарела. Попросите клинику прислать новую ссылку.';
    case 'tokenInvalid':
      return (
        'Ссылка на звонок недействительна. Откройте ссылку из приглашения целиком или ' +
        'попросите клинику прислать новую.'
      );
    case 'roomFull':
      return 'В комнате уже есть два участника. Если это вы в другой вкладке — закройте её.';
    case 'unsupportedVersion':
      return 'Страница звонка устарела. Обновите страницу (Ctrl+F5 или потяните экран вниз на телефоне).';
    case 'replaced':
      return 'Вы подключились с другого устройства или из другой вкладки: звонок продолжается там.';
    case 'recordingRefused':
      return RECORDING_TEXT.refused;
    case 'serverShutdown':
      return 'Сервер перезапускается.';
    case 'connectionLost':
      return 'Связь прервалась.';
    case 'badSdp':
      return 'Не удалось согласовать параметры видеосвязи с сервером. Попробуйте другой браузер.';
    case 'internal':
      return 'Ошибка на сервере. Попробуйте подключиться позже.';
    case 'forbidden':
      return 'Это действие доступно только врачу.';
    case 'notWaiting':
      return 'Пациент уже не ждёт в зале ожидания.';
    case 'callUnavailable':
      return (
        'Подключиться нельзя: консультация отменена или завершена, либо учётная запись ' +
        'отключена. Если это ошибка, свяжитесь с клиникой.'
      );
    case 'joinTimeout':
    case 'tooManyMessages':
    case 'tooLarge':
      return 'Сервер прервал соединение. Подключаемся заново…';
    default:
      return `Ошибка сервера (${code}).`;
  }
}

/** What the page says when the other party is gone, by why they left. */
export function leftText(name: string, reason: LeaveReason | string): string | null {
  const named = name === '' ? '' : ` (${name})`;
  switch (reason) {
    case 'replaced':
      // They rejoined from another tab or device; a participantJoined follows at once.
      return null;
    case 'callEnded':
      // The room closes for this side too; roomClosed follows at once.
      return null;
    case 'connectionLost':
      return `У собеседника${named} прервалась связь. Ожидаем переподключения…`;
    case 'serverShutdown':
      return `Собеседник${named} отключён: сервер перезапускается.`;
    default:
      return `Собеседник${named} вышел из звонка.`;
  }
}

export function roleText(role: string): string {
  switch (role) {
    case 'doctor':
      return 'Врач';
    case 'patient':
      return 'Пациент';
    default:
      return '';
  }
}

export const REMOTE_MUTED_TEXT = {
  audio: 'Собеседник выключил микрофон',
  video: 'Собеседник выключил камеру',
} as const;

type Device = 'camera' | 'microphone' | 'both';

const DEVICE = {
  // [to the device (dative), the device (accusative), is busy]
  camera: ['к камере', 'камеру', 'Камера занята'],
  microphone: ['к микрофону', 'микрофон', 'Микрофон занят'],
  both: ['к камере и микрофону', 'камеру и микрофон', 'Камера и микрофон заняты'],
} as const;

function problemText(device: Device, problem: MediaProblem): string {
  const [toIt, it, busy] = DEVICE[device];
  switch (problem) {
    case 'denied':
      return `Доступ ${toIt} запрещён. ${deniedHelp(browserKind(navigator.userAgent))}`;
    case 'notFound':
      return device === 'camera'
        ? 'Камера не найдена. Подключите камеру и нажмите «Проверить снова».'
        : device === 'microphone'
          ? 'Микрофон не найден. Подключите микрофон или гарнитуру и нажмите «Проверить снова».'
          : 'Камера и микрофон не найдены. Подключите их и нажмите «Проверить снова».';
    case 'busy':
      return (
        `${busy} другой программой. Закройте другие приложения и вкладки, которые используют ` +
        'камеру или микрофон (Zoom, Skype, WhatsApp и т. п.), и нажмите «Проверить снова».'
      );
    case 'insecure':
      return (
        'Браузер не даёт доступ к камере и микрофону на этой странице: она открыта не по ' +
        'защищённому адресу (https). Откройте ссылку из приглашения без изменений.'
      );
    case 'unknown':
      return `Не удалось включить ${it}. Нажмите «Проверить снова» или попробуйте другой браузер.`;
  }
}

/** The pre-call warning about missing devices, or null when both work. */
export function mediaWarning(media: LocalMedia): string | null {
  const { camera, microphone } = media;
  if (camera === null && microphone === null) return null;
  const lines: string[] = [];
  if (camera !== null && camera === microphone) {
    lines.push(problemText('both', camera)); // one cause for both: say it once
  } else {
    if (camera !== null) lines.push(problemText('camera', camera));
    if (microphone !== null) lines.push(problemText('microphone', microphone));
  }
  if (camera !== null && microphone !== null) {
    lines.push('Вы можете присоединиться и без них: вы будете видеть и слышать собеседника, но он вас — нет.');
  } else if (camera !== null) {
    lines.push('Вы можете присоединиться без камеры: собеседник будет вас слышать, но не видеть.');
  } else {
    lines.push('Вы можете присоединиться без микрофона: собеседник будет вас видеть, но не слышать.');
  }
  return lines.join('\n');
}

/** The call's chat. */
export const CHAT_TEXT = {
  open: 'Чат',
  unread: (n: number): string => `непрочитанных: ${n}`,
  me: 'Вы',
  role: (role: 'patient' | 'doctor'): string => (role === 'doctor' ? 'Врач' : 'Пациент'),
  sending: 'Отправляется…',
  failed: 'Не отправлено',
  retry: 'Отправить ещё раз',
  download: 'Скачать',
  conclusion: 'Заключение',
  downloadFailed: 'Не удалось скачать файл. Попробуйте ещё раз.',
  flood: 'Слишком много сообщений подряд. Подождите немного — сообщение можно отправить ещё раз.',
  closed: 'Чат закрыт: консультация завершена или ссылка истекла. Переписка сохранена в карточке консультации.',
  /** A refusal the user can act on, by the server's `code`. */
  refused: (code: string, detail: string): string => {
    switch (code) {
      case 'unsupported_type':
        return 'Такой файл отправить нельзя: подходят фотографии (JPEG, PNG, WebP, HEIC) и документы PDF.';
      case 'file_too_large': {
        const mb = /(\d+) MB/.exec(detail)?.[1];
        return mb === undefined ? 'Файл слишком большой.' : `Файл слишком большой: наибольший размер — ${mb} МБ.`;
      }
      case 'empty_file':
        return 'Файл пустой.';
      case 'files_disabled':
        return 'Отправка файлов в этой клинике не настроена.';
      case 'invalid_message':
        return 'Сообщение не отправлено: оно пустое или слишком длинное (до 4000 символов).';
      default:
        return 'Чат закрыт: консультация завершена или ссылка истекла.';
    }
  },
};

/** A file's size for people: «340 КБ», «2,4 МБ». */
export function fileSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} Б`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} КБ`;
  return `${(bytes / (1024 * 1024)).toFixed(1).replace('.', ',')} МБ`;
}

/** The pre-call check's tests. */
export const CHECK_TEXT = {
  /** On /check, where there is nothing to join. */
  ready: 'Камера и микрофон работают. Проверьте звук и связь; потом откройте ссылку на консультацию.',
  playing: 'Играет сигнал…',
  played: 'Прозвучал сигнал из двух нот. Если вы его не слышали, проверьте громкость и выбранное устройство вывода звука (колонки, наушники).',
  noSound: 'Браузер не может воспроизвести проверочный сигнал.',
  connecting: 'Проверяем связь с сервером видеосвязи…',
  measuring: 'Измеряем скорость, потери и задержку (около 6 секунд)…',
  verdict: {
    good: 'Связь хорошая: видеоконсультация пройдёт без помех.',
    fair: 'Связь средняя: изображение иногда может замирать. Если можете, подключитесь к Wi-Fi или подойдите ближе к роутеру.',
    poor: 'Связь слабая: скорее всего, будет только звук. Подключитесь к другой сети (Wi-Fi или мобильный интернет) и проверьте снова.',
    failed:
      'Не удалось подключиться к серверу видеосвязи. Проверьте интернет; если вы в сети организации, ' +
      'её защита может не пропускать видеосвязь — попробуйте мобильный интернет или отключите VPN.',
  },
  numbers: (up: number, down: number, loss: number, rtt: number | null, path: string | null): string => {
    const rate = (kbps: number): string => (kbps >= 1000 ? `${(kbps / 1000).toFixed(1).replace('.', ',')} Мбит/с` : `${kbps} кбит/с`);
    const via = path === 'relay' ? ' · через TURN-сервер' : path === 'tcp' ? ' · по TCP' : '';
    return (
      `Отправка ${rate(up)}, приём ${rate(down)} · потери ${Math.round(loss * 100)} %` +
      (rtt === null ? '' : ` · задержка ${rtt} мс`) +
      via
    );
  },
};

/** Which browser the page runs in, for instructions that name its buttons. */
export type BrowserKind = 'ios' | 'android' | 'safari' | 'firefox' | 'yandex' | 'edge' | 'chrome' | 'other';

export function browserKind(ua: string): BrowserKind {
  if (/iPhone|iPad|iPod/.test(ua)) return 'ios';
  if (/Android/.test(ua)) return 'android';
  if (/Firefox\//.test(ua)) return 'firefox';
  if (/YaBrowser\//.test(ua)) return 'yandex';
  if (/Edg\//.test(ua)) return 'edge';
  if (/Chrome\/|Chromium\//.test(ua)) return 'chrome';
  if (/Safari\//.test(ua)) return 'safari';
  return 'other';
}

/** How to allow the camera and microphone again, in this browser's words. */
export function deniedHelp(browser: BrowserKind): string {
  switch (browser) {
    case 'ios':
      return (
        'На iPhone и iPad: нажмите «аА» слева в адресной строке → «Настройки веб-сайта» → «Камера» и ' +
        '«Микрофон»: «Разрешить». Если пунктов нет: «Настройки» iPhone → «Safari» → «Камера» и «Микрофон» → ' +
        '«Спрашивать» или «Разрешить». Затем нажмите «Проверить снова».'
      );
    case 'android':
      return (
        'На Android: нажмите на значок слева от адреса → «Разрешения» и включите камеру и микрофон. ' +
        'Если их нет: «Настройки» телефона → «Приложения» → ваш браузер → «Разрешения». Затем нажмите «Проверить снова».'
      );
    case 'firefox':
      return (
        'В Firefox: нажмите на перечёркнутый значок камеры или микрофона слева от адреса и снимите ' +
        'блокировку (крестик у «Заблокировано»), затем нажмите «Проверить снова».'
      );
    case 'safari':
      return (
        'В Safari: меню «Safari» → «Настройки для этого веб-сайта…» → «Камера» и «Микрофон»: «Разрешить», ' +
        'затем нажмите «Проверить снова».'
      );
    case 'yandex':
      return (
        'В Яндекс Браузере: нажмите на значок замка слева от адреса → «Камера» и «Микрофон»: «Разрешить», ' +
        'затем нажмите «Проверить снова».'
      );
    case 'edge':
    case 'chrome':
      return (
        'Нажмите на значок настроек сайта (замок или регулятор) слева от адреса → «Камера» и «Микрофон»: ' +
        '«Разрешить», затем нажмите «Проверить снова».'
      );
    case 'other':
      return (
        'Разрешите этому сайту доступ к камере и микрофону в настройках браузера (обычно — значок слева ' +
        'от адреса), затем нажмите «Проверить снова».'
      );
  }
}

/** Why a call link cannot work: a heading and what to do. */
export function linkProblem(code: string): { title: string; text: string } {
  switch (code) {
    case 'link_expired':
      return {
        title: 'Срок действия ссылки истёк',
        text: 'Ссылка на звонок работает до конца времени консультации. Если консультация ещё впереди, откройте её в личном кабинете и нажмите «Присоединиться к звонку».',
      };
    case 'consultation_cancelled':
      return {
        title: 'Консультация отменена',
        text: 'Звонка не будет. Записаться снова и узнать о возврате оплаты можно в личном кабинете.',
      };
    case 'consultation_completed':
      return {
        title: 'Консультация завершена',
        text: 'Заключение врача и переписка — в карточке консультации в личном кабинете.',
      };
    case 'not_paid':
    case 'consultation_expired':
      return {
        title: 'Консультация не оплачена',
        text: 'Звонок откроется после оплаты. Оплатить можно в личном кабинете.',
      };
    case 'not_a_party':
      return {
        title: 'Эта ссылка — для другого участника',
        text: 'Войдите в личный кабинет под своей учётной записью и откройте консультацию оттуда.',
      };
    case 'not_found':
      return { title: 'Консультация не найдена', text: 'Проверьте ссылку или откройте консультацию в личном кабинете.' };
    default:
      return {
        title: 'Ссылка на звонок недействительна',
        text: 'Откройте ссылку из приглашения целиком, без изменений, или откройте консультацию в личном кабинете.',
      };
  }
}

const MOMENT = new Intl.DateTimeFormat('ru-RU', { day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
const CLOCK = new Intl.DateTimeFormat('ru-RU', { hour: '2-digit', minute: '2-digit' });

/** Who meets whom and when, as the pre-call card says it (times in the viewer's zone). */
export function meetingText(
  role: string,
  c: { startsAt: string; endsAt: string; opensAt: string; timeZone: string; doctorName: string; doctorSpecialty: string; patientName: string },
  now: number,
  viewerZone: string,
): { with: string; when: string; you: string } {
  const specialty = c.doctorSpecialty === '' ? '' : `, ${c.doctorSpecialty.toLowerCase()}`;
  const withText = role === 'doctor' ? `Консультация с пациентом: ${c.patientName}` : `Консультация с врачом: ${c.doctorName}${specialty}`;
  const zone = viewerZone === c.timeZone ? '' : ' (по вашему времени)';
  let when = `${MOMENT.format(new Date(c.startsAt))}–${CLOCK.format(new Date(c.endsAt))}${zone}`;
  if (now < Date.parse(c.opensAt)) when += `. Звонок откроется в ${CLOCK.format(new Date(c.opensAt))}`;
  return { with: withText, when, you: `Вы входите как ${role === 'doctor' ? 'врач' : 'пациент'}.` };
}

/** After the call: what happens next, by role. */
export const AFTER_CALL_TEXT = {
  patient: 'Заключение врача появится в карточке консультации в личном кабинете — мы пришлём уведомление. Если звонок прервался случайно, нажмите «Подключиться снова».',
  doctor: 'Напишите заключение в карточке консультации: после этого консультация закроется, а пациент получит уведомление.',
};
