import { describe, expect, it } from 'vitest';
import { weeklyOccurrences } from './recurrence.ts';
import { utcToZoned } from './time.ts';

const AMS = 'Europe/Amsterdam';
const iso = (d: { start: Date; end: Date }) => [d.start.toISOString(), d.end.toISOString()];

describe('weekly series', () => {
  it('keeps a Tuesday 17:00 session at 17:00 local when summer time begins', () => {
    // 2026-03-17 is a Tuesday; summer time begins on Sunday 2026-03-29.
    const occ = weeklyOccurrences({
      start: new Date('2026-03-17T16:00:00Z'),
      end: new Date('2026-03-17T16:50:00Z'),
      timeZone: AMS,
      count: 4,
    });
    expect(occ.map(iso)).toEqual([
      ['2026-03-17T16:00:00.000Z', '2026-03-17T16:50:00.000Z'],
      ['2026-03-24T16:00:00.000Z', '2026-03-24T16:50:00.000Z'],
      ['2026-03-31T15:00:00.000Z', '2026-03-31T15:50:00.000Z'],
      ['2026-04-07T15:00:00.000Z', '2026-04-07T15:50:00.000Z'],
    ]);
    for (const o of occ) {
      expect(utcToZoned(o.start, AMS)).toMatchObject({ weekday: 2, time: '17:00' });
      expect(utcToZoned(o.end, AMS).time).toBe('17:50');
    }
  });

  it('keeps it at local time when summer time ends, in another zone too', () => {
    const ams = weeklyOccurrences({
      start: new Date('2026-10-20T07:00:00Z'),
      end: new Date('2026-10-20T08:00:00Z'),
      timeZone: AMS,
      count: 2,
    });
    expect(ams.map(iso)).toEqual([
      ['2026-10-20T07:00:00.000Z', '2026-10-20T08:00:00.000Z'],
      ['2026-10-27T08:00:00.000Z', '2026-10-27T09:00:00.000Z'],
    ]);
    // New York ends summer time a week later (2026-11-01).
    const ny = weeklyOccurrences({
      start: new Date('2026-10-27T13:00:00Z'),
      end: new Date('2026-10-27T14:00:00Z'),
      timeZone: 'America/New_York',
      count: 2,
    });
    expect(ny.map((o) => o.start.toISOString())).toEqual([
      '2026-10-27T13:00:00.000Z',
      '2026-11-03T14:00:00.000Z',
    ]);
  });

  it('moves an occurrence that falls in the skipped hour forward by the gap, keeping its length', () => {
    // Sundays 02:30 local: on 2026-03-29 that time does not exist and becomes 03:30 CEST.
    const occ = weeklyOccurrences({
      start: new Date('2026-03-22T01:30:00Z'),
      end: new Date('2026-03-22T02:15:00Z'),
      timeZone: AMS,
      count: 3,
    });
    expect(occ.map((o) => utcToZoned(o.start, AMS).time)).toEqual(['02:30', '03:30', '02:30']);
    expect(occ.map((o) => (o.end.getTime() - o.start.getTime()) / 60_000)).toEqual([45, 45, 45]);
  });

  it('expands until a date (inclusive of its day), every n weeks', () => {
    const occ = weeklyOccurrences({
      start: new Date('2026-11-24T09:00:00Z'),
      end: new Date('2026-11-24T10:00:00Z'),
      timeZone: AMS,
      until: new Date('2026-12-22T06:00:00Z'),
      everyWeeks: 2,
    });
    expect(occ.map((o) => o.start.toISOString().slice(0, 10))).toEqual([
      '2026-11-24',
      '2026-12-08',
      '2026-12-22',
    ]);
  });

  it('refuses a rule without exactly one of count and until, or too many occurrences', () => {
    const base = {
      start: new Date('2026-11-24T09:00:00Z'),
      end: new Date('2026-11-24T10:00:00Z'),
      timeZone: AMS,
    };
    expect(() => weeklyOccurrences(base)).toThrow(/^count: give either count or until/);
    expect(() => weeklyOccurrences({ ...base, count: 2, until: new Date('2027-01-01T00:00:00Z') })).toThrow(
      /^count:/,
    );
    expect(() => weeklyOccurrences({ ...base, count: 105 })).toThrow(
      /^count: must be a whole number from 1 to 104/,
    );
    expect(() => weeklyOccurrences({ ...base, until: new Date('2030-01-01T00:00:00Z') })).toThrow(
      /^until: makes more than 104 occurrences/,
    );
    expect(() => weeklyOccurrences({ ...base, until: new Date('2026-11-01T00:00:00Z') })).toThrow(/^until:/);
    expect(() => weeklyOccurrences({ ...base, count: 2, everyWeeks: 0 })).toThrow(/^everyWeeks:/);
  });
});
