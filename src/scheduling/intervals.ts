/** Half-open time intervals [start, end): the arithmetic of availability and conflicts. */
export interface Interval {
  readonly start: Date;
  readonly end: Date;
}

/** Whether two half-open intervals share an instant (touching ends do not overlap). */
export const overlaps = (a: Interval, b: Interval): boolean =>
  a.start.getTime() < b.end.getTime() && b.start.getTime() < a.end.getTime();

/** Sorted, with overlapping and touching intervals joined. */
export function merge(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals]
    .filter((i) => i.end.getTime() > i.start.getTime())
    .sort((a, b) => a.start.getTime() - b.start.getTime());
  const out: { start: Date; end: Date }[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.start.getTime() <= last.end.getTime()) {
      if (i.end.getTime() > last.end.getTime()) {
        last.end = i.end;
      }
    } else {
      out.push({ start: i.start, end: i.end });
    }
  }
  return out;
}

/** `from` minus every interval of `remove`: what is left, sorted. */
export function subtract(from: readonly Interval[], remove: readonly Interval[]): Interval[] {
  const cuts = merge(remove);
  const out: Interval[] = [];
  for (const f of merge(from)) {
    let start = f.start.getTime();
    const end = f.end.getTime();
    for (const c of cuts) {
      const cs = c.start.getTime();
      const ce = c.end.getTime();
      if (ce <= start || cs >= end) {
        continue;
      }
      if (cs > start) {
        out.push({ start: new Date(start), end: new Date(cs) });
      }
      start = Math.max(start, ce);
      if (start >= end) {
        break;
      }
    }
    if (start < end) {
      out.push({ start: new Date(start), end: new Date(end) });
    }
  }
  return out;
}

/** Whether `inner` lies within one interval of `outer` (after merging). */
export function covered(inner: Interval, outer: readonly Interval[]): boolean {
  return merge(outer).some(
    (o) => o.start.getTime() <= inner.start.getTime() && inner.end.getTime() <= o.end.getTime(),
  );
}

/** Clips intervals to [from, to). */
export function clip(intervals: readonly Interval[], from: Date, to: Date): Interval[] {
  const lo = from.getTime();
  const hi = to.getTime();
  return intervals
    .map((i) => ({
      ...i,
      start: new Date(Math.max(lo, i.start.getTime())),
      end: new Date(Math.min(hi, i.end.getTime())),
    }))
    .filter((i) => i.end.getTime() > i.start.getTime());
}
