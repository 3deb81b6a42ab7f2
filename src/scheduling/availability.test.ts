import { describe, expect, it } from 'vitest';
import { freeTime, slotsIn } from './availability.ts';
import { parseWorkingHours } from './hours.ts';
import { merge, subtract } from './intervals.ts';

const AMS = 'Europe/Amsterdam';
const at = (s: string) => new Date(s);
const iv = (a: string, b: string) => ({ start: at(a), end: at(b) });
const iso = (xs: readonly { start: Date; end: Date }[]) =>
  xs.map((x) => `${x.start.toISOString().slice(11, 16)}-${x.end.toISOString().slice(11, 16)}`);

const HOURS = parseWorkingHours({
  hours: [
    { weekday: 'mon', start: '09:00', end: '12:00', room: 'Room 1' },
    { weekday: 'mon', start: '13:00', end: '17:00' },
    { weekday: 'wed', start: '20:00', end: '24:00' },
  ],
});

describe('interval arithmetic', () => {
  it('merges and subtracts half-open intervals', () => {
    expect(
      iso(
        merge([iv('2026-01-01T10:00Z', '2026-01-01T11:00Z'), iv('2026-01-01T11:00Z', '2026-01-01T12:00Z')]),
      ),
    ).toEqual(['10:00-12:00']);
    expect(
      iso(
        subtract(
          [iv('2026-01-01T09:00Z', '2026-01-01T17:00Z')],
          [iv('2026-01-01T10:00Z', '2026-01-01T11:00Z'), iv('2026-01-01T16:30Z', '2026-01-01T18:00Z')],
        ),
      ),
    ).toEqual(['09:00-10:00', '11:00-16:30']);
  });
});

describe('availability', () => {
  it('is working hours minus appointments, in local time (winter)', () => {
    // Monday 2026-11-23, CET (UTC+1).
    const a = freeTime({
      hours: HOURS,
      busy: [iv('2026-11-23T09:00Z', '2026-11-23T09:50Z')],
      from: at('2026-11-23T00:00Z'),
      to: at('2026-11-24T00:00Z'),
      timeZone: AMS,
    });
    expect(iso(a.free)).toEqual(['08:00-09:00', '09:50-11:00', '12:00-16:00']);
  });

  it('keeps 09:00 local across the change to summer time', () => {
    // Monday 2026-03-30 is the first Monday of CEST (UTC+2).
    const a = freeTime({
      hours: HOURS,
      busy: [],
      from: at('2026-03-30T00:00Z'),
      to: at('2026-03-31T00:00Z'),
      timeZone: AMS,
    });
    expect(iso(a.free)).toEqual(['07:00-10:00', '11:00-15:00']);
  });

  it('cuts slots on the local grid and leaves out the past', () => {
    const a = freeTime({
      hours: HOURS,
      busy: [iv('2026-11-23T08:00Z', '2026-11-23T08:20Z')],
      from: at('2026-11-23T00:00Z'),
      to: at('2026-11-23T12:00Z'),
      timeZone: AMS,
      notBefore: at('2026-11-23T07:30Z'),
      slotMinutes: 50,
      stepMinutes: 30,
    });
    // Free 09:20–12:00 local: slots start on the half hour, 09:30, 10:00, …, 11:00.
    expect(iso(a.slots ?? [])).toEqual(['08:30-09:20', '09:00-09:50', '09:30-10:20', '10:00-10:50']);
  });

  it('reaches midnight (24:00) and is empty for a range in the past', () => {
    // Wednesday 2026-11-25 20:00–24:00 local = 19:00–23:00Z.
    const a = freeTime({
      hours: HOURS,
      busy: [],
      from: at('2026-11-25T00:00Z'),
      to: at('2026-11-27T00:00Z'),
      timeZone: AMS,
    });
    expect(iso(a.free)).toEqual(['19:00-23:00']);
    const past = freeTime({
      hours: HOURS,
      busy: [],
      from: at('2026-11-23T00:00Z'),
      to: at('2026-11-24T00:00Z'),
      timeZone: AMS,
      notBefore: at('2026-12-01T00:00Z'),
      slotMinutes: 30,
    });
    expect(past).toEqual({ free: [], slots: [] });
  });

  it('cuts slots in a zone with a half-hour offset on its own grid', () => {
    // Asia/Kolkata is UTC+5:30: a free 09:00–11:00 local is 03:30–05:30Z.
    const s = slotsIn([iv('2026-11-23T03:30Z', '2026-11-23T05:30Z')], 60, 60, 'Asia/Kolkata');
    expect(iso(s)).toEqual(['03:30-04:30', '04:30-05:30']);
  });
});

describe('working hours', () => {
  it('names the field of a bad entry', () => {
    expect(() => parseWorkingHours({ hours: [{ weekday: 'mon', start: '09:00', end: '08:00' }] })).toThrow(
      /^hours\.0\.end: must be after start/,
    );
    expect(() =>
      parseWorkingHours({
        hours: [
          { weekday: 'tue', start: '09:00', end: '12:00' },
          { weekday: 'tue', start: '11:00', end: '13:00' },
        ],
      }),
    ).toThrow(/^hours\.1: overlaps hours\.0/);
    expect(() => parseWorkingHours({ hours: [{ weekday: 'funday', start: '09:00', end: '10:00' }] })).toThrow(
      /^hours\.0\.weekday:/,
    );
    expect(() => parseWorkingHours({ hours: [{ weekday: 'mon', start: '9:00', end: '10:00' }] })).toThrow(
      /^hours\.0\.start: must be a time HH:MM/,
    );
    expect(() => parseWorkingHours({ hours: [], extra: 1 })).toThrow(/^hours:|^extra|: /);
  });
});
