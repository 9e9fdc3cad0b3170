// Runs an ONNX model in ONNX Runtime for Node.js (onnxruntime-node, CPU) on a raw float32 input
// file and writes the raw float32 output: node ort_run.js MODEL INPUT N C H W OUTPUT
const ort = require('onnxruntime-node');
const fs = require('fs');
(async () => {
  const [model, input, n, c, h, w, output] = process.argv.slice(2);
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const session = await ort.InferenceSession.create(model);
  const result = await session.run({ input: new ort.Tensor('float32', data, [n, c, h, w].map(Number)) });
  const out = result.logits.data;
  fs.writeFileSync(output, Buffer.from(out.buffer, out.byteOffset, out.length * 4));
})().catch((e) => {
  console.error('ort_run: ' + e.message);
  process.exit(1);
});
