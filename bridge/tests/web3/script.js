// Drives a staples sidecar with the real web3-shh@1.10.4 client.
// Usage: node script.js <http url> <ws url>. Prints "web3-shh compat: OK" and exits 0 on success.
'use strict';
const Shh = require('web3-shh');

const [httpUrl, wsUrl] = process.argv.slice(2);
const TOPIC = '0xcd423760';

function fail(msg) {
  console.error('web3-shh compat: FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 20000);

async function main() {
  const http = new Shh(httpUrl);
  const ws = new Shh(wsUrl);

  if ((await http.getVersion()) !== '6.0') fail('shh_version');
  if (!(await http.setMinPoW(0))) fail('setMinPoW');
  if ((await http.net.getId()) !== 1) fail('net.getId');
  if ((await http.net.getPeerCount()) !== 0) fail('net.getPeerCount');
  if ((await http.net.isListening()) !== true) fail('net.isListening');

  // Subscribe over WebSocket, post over HTTP.
  const wsKey = await ws.generateSymKeyFromPassword('status');
  const httpKey = await http.generateSymKeyFromPassword('status');
  const received = new Promise((resolve, reject) => {
    ws.subscribe('messages', { symKeyID: wsKey, topics: [TOPIC] })
      .on('data', resolve)
      .on('error', reject)
      .on('connected', async () => {
        try {
          await http.post({ symKeyID: httpKey, topic: TOPIC, payload: '0x68656c6c6f', ttl: 10, powTarget: 0.002, powTime: 1 });
        } catch (e) {
          reject(e);
        }
      });
  });
  const msg = await received;
  if (msg.payload !== '0x68656c6c6f' || msg.topic !== TOPIC) fail('subscription payload ' + JSON.stringify(msg));

  // Poll over HTTP: newMessageFilter + getFilterMessages, asymmetric this time.
  const pair = await http.newKeyPair();
  const pub = await http.getPublicKey(pair);
  const filter = await http.newMessageFilter({ privateKeyID: pair });
  const hash = await ws.post({ pubKey: pub, topic: TOPIC, payload: '0x0102', ttl: 10, sig: await ws.newKeyPair() }).catch((e) => fail('post ' + e));
  let got = [];
  for (let i = 0; i < 50 && got.length === 0; i++) {
    got = await http.getFilterMessages(filter);
    if (got.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  if (got.length !== 1 || got[0].payload !== '0x0102' || got[0].hash !== hash) fail('filter messages ' + JSON.stringify(got));
  if (got[0].recipientPublicKey !== pub) fail('recipientPublicKey');
  if (!(await http.deleteMessageFilter(filter))) fail('deleteMessageFilter');

  // A geth error comes back as an error.
  await http.getFilterMessages(filter).then(
    () => fail('getFilterMessages on a deleted filter should fail'),
    (e) => { if (!String(e.message).includes('filter not found')) fail('error text ' + e.message); }
  );
  console.log('web3-shh compat: OK');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
