// Worker threads do not inherit tsx's loader on Node 20, so each worker registers it before loading
// the TypeScript module named in workerData.entryUrl.
import { register } from "tsx/esm/api";
import { workerData } from "node:worker_threads";

register();
await import(workerData.entryUrl);
