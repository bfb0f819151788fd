/**
 * Picking a time: a strip of days (the next two weeks, in the viewer's zone) and the chosen
 * day's free times. The patient's booking and the clinic's «Перенести» both use it.
 */

import type { Slot } from './api';
import { h, say } from './dom';
import { clockIn, dayKey, dayLabel, slotTime, viewerZone } from './texts';

/** The days the strip offers: today and the next 13, in the viewer's zone. */
const STRIP_DAYS = 14;

/** Where a picker draws: the strip, the times, and a note on the doctor's zone. */
export interface PickerParts {
  days: HTMLElement;
  slots: HTMLUListElement;
  zoneNote: HTMLElement;
}

/** What a picker shows: the free slots, the day picked, the slot chosen. */
export interface Picking {
  slots: Slot[];
  day: string | null;
  chosen: Slot | null;
}

/**
 * Draw `p` into `parts`. `onDay` runs after a day is picked (the picker is drawn again and the
 * day keeps the focus); `onChoose` when a time is. `verb` ends each time's spoken name
 * («записаться», «перенести сюда»).
 */
export function renderPicker(
  parts: PickerParts,
  p: Picking,
  o: { verb: string; onDay: () => void; onChoose: (s: Slot) => void },
): void {
  const zone = viewerZone();
  const byDay = new Map<string, Slot[]>();
  for (const s of p.slots) {
    const key = dayKey(new Date(s.startsAt), zone);
    byDay.set(key, [...(byDay.get(key) ?? []), s]);
  }
  const days: string[] = [];
  const now = Date.now();
  for (let i = 0; i < STRIP_DAYS; i++) {
    const key = dayKey(new Date(now + i * 86_400_000), zone);
    if (!days.includes(key)) days.push(key);
  }
  // Slots beyond the strip (a long list) still get their day.
  for (const key of [...byDay.keys()].sort()) if (!days.includes(key)) days.push(key);
  if (p.day === null || !byDay.has(p.day)) p.day = days.find((d) => byDay.has(d)) ?? null;
  parts.days.hidden = p.slots.length === 0;
  parts.days.replaceChildren(
    ...days.map((key) => {
      const label = dayLabel(key);
      const count = byDay.get(key)?.length ?? 0;
      const button = h(
        'button',
        {
          class: 'day',
          testid: 'day',
          attrs: { type: 'button', 'data-day': key, 'aria-pressed': String(key === p.day) },
        },
        h('span', { class: 'day-week', text: label.weekday }),
        h('span', { class: 'day-num', text: label.day }),
        h('span', { class: 'day-month', text: label.month }),
        // Read out, not shown: how much is free that day.
        h('span', { class: 'visually-hidden', text: count === 0 ? ', нет свободного времени' : `, свободно: ${count}` }),
      );
      button.disabled = count === 0;
      button.addEventListener('click', () => {
        p.day = key;
        p.chosen = null;
        renderPicker(parts, p, o);
        o.onDay();
        parts.days.querySelector<HTMLButtonElement>(`[data-day="${key}"]`)?.focus();
      });
      return button;
    }),
  );
  const today = p.day === null ? [] : (byDay.get(p.day) ?? []);
  parts.slots.replaceChildren(
    ...today.map((s) => {
      const time = clockIn(s.startsAt, zone);
      const button = h('button', {
        class: 'button secondary time',
        testid: 'book-slot',
        text: time,
        attrs: {
          type: 'button',
          'aria-label': `${time}, ${dayLabel(dayKey(new Date(s.startsAt), zone)).long}: ${o.verb}`,
          'aria-pressed': String(p.chosen?.id === s.id),
        },
      });
      button.addEventListener('click', () => {
        p.chosen = s;
        for (const b of parts.slots.querySelectorAll<HTMLButtonElement>('[data-testid="book-slot"]')) {
          b.setAttribute('aria-pressed', String(b === button));
        }
        o.onChoose(s);
      });
      return h('li', { class: 'slot', testid: 'slot', attrs: { 'data-slot-id': s.id } }, button);
    }),
  );
  // The doctor's zone is worth a word only when it tells another clock.
  const first = p.slots[0];
  const other = first === undefined ? '' : slotTime(first.startsAt, first.endsAt, first.timeZone, zone).zone;
  say(
    parts.zoneNote,
    other === '' ? null : `Время указано по вашему часовому поясу. У врача другой часовой пояс: ${first?.timeZone ?? ''}.`,
  );
}
