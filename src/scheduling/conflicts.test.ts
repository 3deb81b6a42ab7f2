import { describe, expect, it } from 'vitest';
import { conflictsOf, roomFor, type Slot, SlotConflict, selfConflicts } from './conflicts.ts';
import { parseWorkingHours } from './hours.ts';
import { suits } from './waiting.ts';

const AMS = 'Europe/Amsterdam';
const DOC = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const slot = (a: string, b: string, clinicianId = DOC, room: string | null = null): Slot => ({
  start: new Date(a),
  end: new Date(b),
  clinicianId,
  room,
});
// Mondays 09:00–17:00 local (08:00–16:00Z in winter) in Room 1.
const HOURS = {
  hours: parseWorkingHours({ hours: [{ weekday: 'mon', start: '09:00', end: '17:00', room: 'Room 1' }] }),
  timeZone: AMS,
};

describe('conflict detection', () => {
  const existing = [
    slot('2026-11-23T09:00Z', '2026-11-23T09:50Z', DOC, 'Room 1'),
    slot('2026-11-23T11:00Z', '2026-11-23T12:00Z', OTHER, 'Room 2'),
  ];

  it('finds the clinician busy and the room taken, and names only what and when', () => {
    expect(conflictsOf(slot('2026-11-23T09:30Z', '2026-11-23T10:00Z'), existing, null)).toEqual([
      { kind: 'clinician', start: new Date('2026-11-23T09:00Z'), end: new Date('2026-11-23T09:50Z') },
    ]);
    expect(
      conflictsOf(slot('2026-11-23T11:30Z', '2026-11-23T12:30Z', DOC, 'Room 2'), existing, null).map(
        (c) => c.kind,
      ),
    ).toEqual(['room']);
    expect(
      conflictsOf(slot('2026-11-23T09:10Z', '2026-11-23T09:20Z', DOC, 'Room 1'), existing, null).map(
        (c) => c.kind,
      ),
    ).toEqual(['clinician', 'room']);
  });

  it('lets appointments touch end to start', () => {
    expect(
      conflictsOf(slot('2026-11-23T09:50Z', '2026-11-23T10:40Z', DOC, 'Room 1'), existing, null),
    ).toEqual([]);
    expect(
      conflictsOf(slot('2026-11-23T08:10Z', '2026-11-23T09:00Z', DOC, 'Room 1'), existing, null),
    ).toEqual([]);
  });

  it('checks working hours only when the clinician has some', () => {
    const evening = slot('2026-11-23T16:30Z', '2026-11-23T17:00Z');
    expect(conflictsOf(evening, [], HOURS).map((c) => c.kind)).toEqual(['hours']);
    expect(conflictsOf(evening, [], { hours: [], timeZone: AMS })).toEqual([]);
    expect(conflictsOf(slot('2026-11-23T15:00Z', '2026-11-23T16:00Z'), [], HOURS)).toEqual([]);
    // Tuesday: no hours that day.
    expect(conflictsOf(slot('2026-11-24T10:00Z', '2026-11-24T11:00Z'), [], HOURS).map((c) => c.kind)).toEqual(
      ['hours'],
    );
  });

  it('finds a series overlapping itself', () => {
    const c = selfConflicts([
      slot('2026-11-23T09:00Z', '2026-11-23T10:00Z'),
      slot('2026-11-23T09:30Z', '2026-11-23T10:30Z'),
    ]);
    expect([...c.keys()]).toEqual([1]);
  });

  it('takes the room of the working hours when none is asked for', () => {
    expect(roomFor(slot('2026-11-23T09:00Z', '2026-11-23T10:00Z'), undefined, HOURS)).toBe('Room 1');
    expect(roomFor(slot('2026-11-23T09:00Z', '2026-11-23T10:00Z'), 'Room 9', HOURS)).toBe('Room 9');
    expect(roomFor(slot('2026-11-24T09:00Z', '2026-11-24T10:00Z'), undefined, HOURS)).toBeNull();
  });

  it('says what conflicts in its message, never whose appointment', () => {
    const e = new SlotConflict([
      {
        index: 0,
        start: new Date('2026-11-23T09:00Z'),
        end: new Date('2026-11-23T10:00Z'),
        conflicts: [{ kind: 'room', start: new Date(), end: new Date() }],
      },
    ]);
    expect(e).toMatchObject({
      code: 'CUSTOS_ERR_CONFLICT',
      status: 409,
      message: 'the time conflicts (room)',
    });
    const series = new SlotConflict([
      {
        index: 2,
        start: new Date(),
        end: new Date(),
        conflicts: [{ kind: 'clinician', start: new Date(), end: new Date() }],
      },
      {
        index: 5,
        start: new Date(),
        end: new Date(),
        conflicts: [{ kind: 'hours', start: new Date(), end: new Date() }],
      },
    ]);
    expect(series.message).toBe('2 occurrence(s) conflict (clinician, working hours); nothing was booked');
  });
});

describe('waiting-list matching', () => {
  const freed = {
    start: new Date('2026-11-23T09:00Z'),
    end: new Date('2026-11-23T09:50Z'),
    clinicianId: DOC,
  };

  it('matches the clinician (or any) and the preferred weekdays and local times', () => {
    expect(suits({ clinicianId: null, preferred: {} }, freed, AMS)).toBe(true);
    expect(suits({ clinicianId: OTHER, preferred: {} }, freed, AMS)).toBe(false);
    // 10:00–10:50 local on a Monday.
    expect(
      suits({ clinicianId: DOC, preferred: { weekdays: ['mon'], from: '09:00', to: '12:00' } }, freed, AMS),
    ).toBe(true);
    expect(suits({ clinicianId: DOC, preferred: { weekdays: ['tue', 'wed'] } }, freed, AMS)).toBe(false);
    expect(suits({ clinicianId: DOC, preferred: { from: '13:00' } }, freed, AMS)).toBe(false);
    expect(suits({ clinicianId: DOC, preferred: { to: '10:30' } }, freed, AMS)).toBe(false);
  });
});
