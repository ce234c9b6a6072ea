import { tableFromIPC } from 'apache-arrow';
const url = process.argv[2];
const res = await fetch(url, { headers: { accept: 'application/vnd.apache.arrow.stream' } });
const t0 = Date.now();
const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
const steps = table.getChild('step'), values = table.getChild('value');
let sum = 0; for (const v of values) sum += v;
console.log(JSON.stringify({ rows: table.numRows, batches: table.batches.length, fields: table.schema.fields.map(f => `${f.name}:${f.type}`), firstStep: Number(steps.get(0)), lastStep: Number(steps.get(table.numRows - 1)), sum, ms: Date.now() - t0 }));
