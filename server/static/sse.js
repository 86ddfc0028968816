// Server-sent events over fetch (EventSource cannot POST or send headers): the `data:` payload
// of each event of an OpenAI-format stream, as a string, in order.

export async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data = [];
  for (;;) {
    const {value, done} = await reader.read();
    buffer += done ? decoder.decode() : decoder.decode(value, {stream: true});
    const lines = buffer.split(/\r\n|\n|\r(?!$)/);
    buffer = done ? '' : lines.pop();
    for (const line of lines) {
      if (line === '' || line === '\r') {
        if (data.length) yield data.join('\n');
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      } // comments (": ping") and other fields carry nothing for us
    }
    if (done) break;
  }
  if (data.length) yield data.join('\n');
}
