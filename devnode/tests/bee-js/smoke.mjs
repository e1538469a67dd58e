// Drives two staples-devnode nodes with the real bee-js 12.3.1 (run by devnode/tests/bee_js.rs).
// Usage: node smoke.mjs <url of node 0> <url of node 1>
// Prints "bee-js smoke: OK" when every step passed; throws (exit code 1) otherwise.
import { Bee, PrivateKey, Topic } from '@ethersphere/bee-js'

const [url0, url1] = process.argv.slice(2)
if (!url0 || !url1) throw new Error('usage: node smoke.mjs <url0> <url1>')
const bee0 = new Bee(url0)
const bee1 = new Bee(url1)

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`)
  console.log(`ok - ${what}`)
}

// Node information, through bee-js's zod schemas.
check(await bee0.isConnected(), 'isConnected')
check((await bee0.getHealth()).status === 'ok', 'getHealth')
check((await bee0.getStatus()).isWarmingUp === false, 'getStatus')
check((await bee0.getChainState()).block > 300, 'getChainState')
const addresses1 = await bee1.getNodeAddresses()
check(addresses1.overlay.toHex().length === 64, 'getNodeAddresses')
check((await bee0.getTopology()).connected === 1, 'getTopology')

// Stamps: bee-js checks the amount against the chain price and polls until usable.
const batchId = await bee0.createPostageBatch('500000000', 20)
const batch = await bee0.getPostageBatch(batchId)
check(batch.usable && batch.depth === 20, 'createPostageBatch / getPostageBatch')

// Bytes: the reference of bee-js's own "Hello, Swarm!" test.
const upload = await bee0.uploadData(batchId, 'Hello, Swarm!')
check(upload.reference.toHex() === '680bb26ce329867d9063251135dea6f02b58d0ef3d4eb9076c3d5fc03fe54cf6', 'uploadData reference')
check((await bee1.downloadData(upload.reference)).toUtf8() === 'Hello, Swarm!', 'downloadData on the other node')
const big = new Uint8Array(10000).map((_, i) => i % 251)
const bigUpload = await bee0.uploadData(batchId, big)
const bigBack = await bee1.downloadData(bigUpload.reference)
check(bigBack.length === 10000 && bigBack.toUint8Array().every((b, i) => b === i % 251), 'multi-chunk round trip')

// Feeds: bee-js computes the next index from the feed headers and verifies SOCs locally.
const signer = new PrivateKey('0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef')
const topic = Topic.fromString('staples-smoke')
const writer = bee0.makeFeedWriter(topic, signer)
await writer.uploadPayload(batchId, 'first')
await writer.uploadPayload(batchId, 'second')
const reader = bee1.makeFeedReader(topic, signer.publicKey().address())
const latest = await reader.downloadPayload()
check(latest.payload.toUtf8() === 'second' && latest.feedIndex.toBigInt() === 1n, 'feed latest')
const first = await reader.downloadPayload({ index: 0 })
check(first.payload.toUtf8() === 'first', 'feed by index')

// PSS from node 0 to node 1 (no recipient: encrypted to the topic, as bee-js's own pss test).
const target = addresses1.overlay.toHex().slice(0, 2)
const received = bee1.pssReceive(Topic.fromString('staples-pss'), 20000)
await new Promise(resolve => setTimeout(resolve, 300))
await bee0.pssSend(batchId, Topic.fromString('staples-pss'), target, 'hello over pss')
check((await received).toUtf8() === 'hello over pss', 'pssSend / pssReceive')

// bee-js 12.3.1 puts a PublicKey object into the query string as "[object Object]", so a
// send with a recipient fails against Bee with 400 "invalid query params"; the dev node
// answers the same way.
let status = 0
try {
  await bee0.pssSend(batchId, Topic.fromString('staples-pss'), target, 'x', addresses1.pssPublicKey)
} catch (e) {
  status = e.status
}
check(status === 400, 'pssSend with a recipient: 400, as Bee (bee-js sends "[object Object]")')

console.log('bee-js smoke: OK')
