import { assert } from "../util/assert.js";
import { decodeClusterConfig } from "./cluster-config.js";
import { type ClusterConfig, type Entry, EntryType } from "./types.js";

interface ConfigRecord {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
}

/**
 * Which configuration is in force at each point of the log (pitfall 18). A configuration entry takes
 * effect when it is appended, not when it commits, so a follower whose uncommitted suffix is overwritten
 * falls back to the configuration before it. The base is the snapshot's configuration (or the bootstrap
 * one, at index 0); above it, one record per configuration entry still in the log.
 */
export class ConfigHistory {
  private base: ConfigRecord;
  private records: ConfigRecord[] = [];

  constructor(base: ClusterConfig, baseIndex: number, baseTerm: number, entries: readonly Entry[]) {
    this.base = { index: baseIndex, term: baseTerm, config: base };
    this.appended(entries.filter((entry) => entry.index > baseIndex));
  }

  /** The configuration in force now: the last one appended. */
  get current(): ClusterConfig {
    return (this.records[this.records.length - 1] ?? this.base).config;
  }

  /** Index of the entry that set the current configuration (the base's index when no entry did). */
  get currentIndex(): number {
    return (this.records[this.records.length - 1] ?? this.base).index;
  }

  /** Whether no configuration entry was ever seen: the configuration is still the bootstrap one. */
  get isBootstrap(): boolean {
    return this.base.index === 0 && this.records.length === 0;
  }

  /** The configuration in force at `index` (for a snapshot taken there). */
  at(index: number): ClusterConfig {
    assert(index >= this.base.index, `configuration asked for index ${index}, below the base at ${this.base.index}`);
    let found = this.base;
    for (const record of this.records) {
      if (record.index > index) break;
      found = record;
    }
    return found.config;
  }

  /** New entries were appended to the log (after any truncation was reported). */
  appended(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.type !== EntryType.Config) continue;
      assert(entry.index > this.currentIndex, "configuration entries appended out of order");
      this.records.push({ index: entry.index, term: entry.term, config: decodeClusterConfig(entry.data) });
    }
  }

  /** The log was cut back so that `fromIndex` and everything after it are gone. */
  truncated(fromIndex: number): void {
    assert(fromIndex > this.base.index, "truncating below the configuration's base");
    while (this.records.length > 0 && this.records[this.records.length - 1]!.index >= fromIndex) this.records.pop();
  }

  /** A snapshot at `index` now holds everything up to it; records below become the base. */
  compacted(index: number, term: number): void {
    if (index <= this.base.index) return;
    this.base = { index, term, config: this.at(index) };
    this.records = this.records.filter((record) => record.index > index);
  }

  /** The log was replaced by a snapshot. */
  restored(config: ClusterConfig, index: number, term: number): void {
    this.base = { index, term, config };
    this.records = [];
  }
}
