import { createHash } from "node:crypto";
import type { StateMachine } from "../../src/node/state-machine.js";
import type { Entry } from "../../src/raft/types.js";

const digestBytes = 32;

/** A state machine for driver tests: a count and a chained digest of every applied entry. */
export class JournalStateMachine implements StateMachine {
  appliedCount = 0;
  digest = new Uint8Array(digestBytes);

  apply(entry: Entry): Uint8Array {
    const hash = createHash("sha256");
    hash.update(this.digest);
    const header = new DataView(new ArrayBuffer(16));
    header.setFloat64(0, entry.index);
    header.setFloat64(8, entry.term);
    hash.update(new Uint8Array(header.buffer));
    hash.update(entry.data);
    this.digest = new Uint8Array(hash.digest());
    this.appliedCount++;
    return new Uint8Array(0);
  }

  snapshot(): Uint8Array {
    const data = new Uint8Array(8 + digestBytes);
    new DataView(data.buffer).setFloat64(0, this.appliedCount);
    data.set(this.digest, 8);
    return data;
  }

  restore(data: Uint8Array): void {
    if (data.length !== 8 + digestBytes) throw new Error(`journal snapshot has ${data.length} bytes, expected ${8 + digestBytes}`);
    this.appliedCount = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0);
    this.digest = data.slice(8);
  }
}
