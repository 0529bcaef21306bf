// Mergeable latency histogram: log-linear buckets (64 per power of two, under 1.6 % error), so a generator
// process can send its counts to the parent in a few kilobytes whatever the number of samples.

/** Sub-buckets per power of two: the relative error of a reported percentile is below 1 / this. */
const subBucketsPerOctave = 64;
/** Resolution of the smallest bucket, in microseconds. */
const resolutionUs = 1;
/** Longest latency recorded exactly; longer ones land in the last bucket (and still set `maxUs`). */
const recordedUsMax = 600_000_000;
const bucketCount = Math.ceil(Math.log2(recordedUsMax / resolutionUs) * subBucketsPerOctave) + 1;

/** What crosses the process boundary: sparse bucket counts and the exact extremes. */
export interface HistogramData {
  readonly counts: Record<string, number>;
  readonly count: number;
  readonly maxUs: number;
  readonly sumUs: number;
}

function bucketOf(us: number): number {
  if (us <= resolutionUs) return 0;
  return Math.min(bucketCount - 1, Math.ceil(Math.log2(us / resolutionUs) * subBucketsPerOctave));
}

function upperBoundUs(bucket: number): number {
  return resolutionUs * 2 ** (bucket / subBucketsPerOctave);
}

export class LatencyHistogram {
  private readonly counts = new Map<number, number>();
  count = 0;
  maxUs = 0;
  private sumUs = 0;

  record(latencyMs: number): void {
    const us = latencyMs * 1000;
    const bucket = bucketOf(us);
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(data: HistogramData): void {
    for (const [bucket, n] of Object.entries(data.counts)) this.counts.set(Number(bucket), (this.counts.get(Number(bucket)) ?? 0) + n);
    this.count += data.count;
    this.sumUs += data.sumUs;
    this.maxUs = Math.max(this.maxUs, data.maxUs);
  }

  toData(): HistogramData {
    return { counts: Object.fromEntries(this.counts), count: this.count, maxUs: this.maxUs, sumUs: this.sumUs };
  }

  /** The latency below which `fraction` of the samples fall, in ms (NaN without samples). */
  percentileMs(fraction: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(this.count * fraction));
    let seen = 0;
    for (const bucket of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(bucket)!;
      if (seen >= rank) return Math.min(upperBoundUs(bucket), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  meanMs(): number {
    return this.count === 0 ? Number.NaN : this.sumUs / this.count / 1000;
  }
}
