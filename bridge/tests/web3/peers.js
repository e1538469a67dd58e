// Drives two staples sidecars peered over devp2p with the real web3-shh@1.10.4 client:
// each app sees the other's posts (symmetric over a WebSocket subscription, asymmetric
// and signed over an HTTP filter), and each node counts the other as a peer.
// Usage: node peers.js <A http> <A ws> <B http> <B ws>. Prints "web3-shh peers: OK".
'use strict';
const Shh = require('web3-shh');

const [aHttp, aWs, bHttp, bWs] = process.argv.slice(2);
const TOPIC = '0x5eed2002';

function fail(msg) {
  console.error('web3-shh peers: FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 40000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Symmetric: `sub` subscribes over its WebSocket, `post` posts over HTTP on the other node.
async function symmetric(sub, post, text) {
  const subKey = await sub.generateSymKeyFromPassword('devp2p peers');
  const postKey = await post.generateSymKeyFromPassword('devp2p peers');
  const payload = '0x' + Buffer.from(text).toString('hex');
  const got = new Promise((resolve, reject) => {
    sub.subscribe('messages', { symKeyID: subKey, topics: [TOPIC] })
      .on('data', (m) => { if (m.payload === payload) resolve(m); })
      .on('error', reject)
      .on('connected', async () => {
        try {
          await post.post({ symKeyID: postKey, topic: TOPIC, payload, ttl: 20, powTarget: 0.002, powTime: 1 });
        } catch (e) {
          reject(e);
        }
      });
  });
  const m = await got;
  if (m.topic !== TOPIC) fail('topic ' + JSON.stringify(m));
}

// Asymmetric and signed: `to` polls a filter on its key pair, `from` posts to its public key.
async function asymmetric(to, from, text) {
  const pair = await to.newKeyPair();
  const pub = await to.getPublicKey(pair);
  const filter = await to.newMessageFilter({ privateKeyID: pair, topics: [TOPIC] });
  const signer = await from.newKeyPair();
  const signerPub = await from.getPublicKey(signer);
  const payload = '0x' + Buffer.from(text).toString('hex');
  const hash = await from.post({ pubKey: pub, sig: signer, topic: TOPIC, payload, ttl: 20, powTarget: 0.002, powTime: 1 });
  let got = [];
  for (let i = 0; i < 100 && got.length === 0; i++) {
    got = await to.getFilterMessages(filter);
    if (got.length === 0) await sleep(100);
  }
  if (got.length !== 1) fail('asymmetric: ' + JSON.stringify(got));
  const m = got[0];
  if (m.payload !== payload || m.hash !== hash || m.sig !== signerPub || m.recipientPublicKey !== pub) {
    fail('asymmetric message ' + JSON.stringify(m));
  }
}

async function main() {
  const a = { http: new Shh(aHttp), ws: new Shh(aWs) };
  const b = { http: new Shh(bHttp), ws: new Shh(bWs) };
  for (const [name, n] of [['A', a], ['B', b]]) {
    let peers = 0;
    for (let i = 0; i < 100 && peers < 1; i++) {
      peers = await n.http.net.getPeerCount();
      if (peers < 1) await sleep(100);
    }
    if (peers < 1) fail(name + ' net_peerCount ' + peers);
  }
  await symmetric(a.ws, b.http, 'B to A, symmetric');
  await symmetric(b.ws, a.http, 'A to B, symmetric');
  await asymmetric(a.http, b.ws, 'B to A, asymmetric');
  await asymmetric(b.http, a.ws, 'A to B, asymmetric');
  console.log('web3-shh peers: OK');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
