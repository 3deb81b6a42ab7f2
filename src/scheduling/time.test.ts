import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addDays, checkTimeZone, offsetAt, utcToZoned, weekdayOf, zonedToUtc } from './time.ts';

const AMS = 'Europe/Amsterdam';
const NY = 'America/New_York';

describe('local time in the practice zone', () => {
  it('turns a local wall-clock time into the instant, in winter and in summer', () => {
    expect(zonedToUtc('2026-01-13', 9 * 60, AMS).toISOString()).toBe('2026-01-13T08:00:00.000Z');
    expect(zonedToUtc('2026-07-14', 9 * 60, AMS).toISOString()).toBe('2026-07-14T07:00:00.000Z');
    expect(zonedToUtc('2026-07-14', 9 * 60, NY).toISOString()).toBe('2026-07-14T13:00:00.000Z');
    expect(zonedToUtc('2026-07-14', 24 * 60, AMS).toISOString()).toBe('2026-07-14T22:00:00.000Z');
  });

  it('moves a time in the skipped hour forward by the gap (clocks go forward)', () => {
    // 2026-03-29 02:00 CET becomes 03:00 CEST: 02:30 does not exist and is read as 03:30.
    expect(zonedToUtc('2026-03-29', 150, AMS).toISOString()).toBe('2026-03-29T01:30:00.000Z');
    expect(utcToZoned(new Date('2026-03-29T01:30:00Z'), AMS).time).toBe('03:30');
    // New York: 2026-03-08 02:00 EST becomes 03:00 EDT.
    expect(zonedToUtc('2026-03-08', 150, NY).toISOString()).toBe('2026-03-08T07:30:00.000Z');
  });

  it('reads a time in the repeated hour as its first occurrence (clocks go back)', () => {
    // 2026-10-25 03:00 CEST becomes 02:00 CET: 02:30 happens at 00:30Z and again at 01:30Z.
    expect(zonedToUtc('2026-10-25', 150, AMS).toISOString()).toBe('2026-10-25T00:30:00.000Z');
    expect(zonedToUtc('2026-11-01', 90, NY).toISOString()).toBe('2026-11-01T05:30:00.000Z');
  });

  it('knows weekdays, date arithmetic and offsets', () => {
    expect(weekdayOf('2026-11-23')).toBe(1);
    expect(weekdayOf('2026-11-29')).toBe(7);
    expect(addDays('2026-12-30', 3)).toBe('2027-01-02');
    expect(addDays('2028-02-28', 1)).toBe('2028-02-29');
    expect(offsetAt(Date.parse('2026-01-01T00:00:00Z'), AMS)).toBe(3_600_000);
    expect(offsetAt(Date.parse('2026-07-01T00:00:00Z'), AMS)).toBe(7_200_000);
    expect(utcToZoned(new Date('2026-11-23T23:30:00Z'), AMS)).toEqual({
      date: '2026-11-24',
      minutes: 30,
      weekday: 2,
      time: '00:30',
    });
  });

  it('names the field of a bad time zone and never echoes it', () => {
    expect(() => checkTimeZone('Mars/Olympus_Mons')).toThrow(/^timeZone: must be an IANA time zone/);
    expect(checkTimeZone('europe/amsterdam')).toBe(AMS);
  });

  it('round-trips every instant on a whole minute through its wall-clock time', () => {
    const zones = [AMS, NY, 'Australia/Lord_Howe', 'Asia/Kolkata', 'America/St_Johns', 'UTC'];
    fc.assert(
      fc.property(
        fc.integer({
          min: Date.parse('2000-01-01T00:00:00Z') / 60_000,
          max: Date.parse('2040-01-01T00:00:00Z') / 60_000,
        }),
        fc.constantFrom(...zones),
        (minute, zone) => {
          const t = minute * 60_000;
          const w = utcToZoned(new Date(t), zone);
          const back = zonedToUtc(w.date, w.minutes, zone).getTime();
          // The same wall-clock time; the instant itself, or the earlier one of a repeated hour.
          expect(utcToZoned(new Date(back), zone)).toEqual(w);
          expect(back).toBeLessThanOrEqual(t);
          expect(t - back).toBeLessThanOrEqual(3_600_000);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
