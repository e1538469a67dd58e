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

// geth's default padding as its app sees it: random bytes that bring
// flags(1) + size field + payload + padding (+ 65-byte signature) to a multiple of 256.
function checkDefaultPadding(msg, payloadLen, signed) {
  const sizeField = payloadLen < 256 ? 1 : payloadLen < 65536 ? 2 : 3;
  const used = (1 + sizeField + payloadLen + (signed ? 65 : 0)) % 256;
  const want = 256 - used;
  const got = (msg.padding.length - 2) / 2;
  if (got !== want) fail('default padding of ' + got + ' bytes, geth gives ' + want + ': ' + msg.padding);
  // A Staples DAG carrier ("STPLDAG\x01" ...) never reaches the app.
  if (msg.padding.startsWith('0x5354504c44414701')) fail('the app sees the DAG carrier: ' + msg.padding);
}

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
  checkDefaultPadding(msg, 5, false);

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
  checkDefaultPadding(got[0], 2, true);

  // Explicit padding comes back exactly as posted.
  await ws.post({ pubKey: pub, topic: TOPIC, payload: '0x03', padding: '0x0102030405', ttl: 10 }).catch((e) => fail('post ' + e));
  got = [];
  for (let i = 0; i < 50 && got.length === 0; i++) {
    got = await http.getFilterMessages(filter);
    if (got.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  if (got.length !== 1 || got[0].padding !== '0x0102030405') fail('explicit padding ' + JSON.stringify(got));
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
