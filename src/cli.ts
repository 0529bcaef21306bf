#!/usr/bin/env node
// The `raftlock` command. The consensus core exists; the node process (storage, transport, APIs) does not
// yet, so this says so plainly instead of pretending to start a cluster.
const message = `raftlock ${process.env.npm_package_version ?? ""}
The Raft consensus core and its simulator are built; the node process that runs a cluster is not yet.
What works today:
  npm test                         unit tests and simulated clusters
  npm run sim -- --seeds 300       random fault exploration of the consensus core
`;
process.stdout.write(message);
process.exitCode = process.argv.length > 2 ? 1 : 0;
