// The Live tab's microphone capture: 16-bit PCM frames of 100 ms at the context's own rate,
// posted to the page, which sends them on over its WebSocket (the service resamples).
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(Math.round(sampleRate / 10));
    this.filled = 0;
  }

  process(inputs) {
    const samples = inputs[0][0];
    if (samples) {
      for (const x of samples) {
        this.frame[this.filled++] = Math.max(-1, Math.min(1, x)) * 32767;
        if (this.filled === this.frame.length) {
          this.port.postMessage(this.frame.buffer.slice(0));
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
