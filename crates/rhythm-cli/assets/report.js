(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('rhythm-data').textContent);
  var NS = 'http:' + '//www.w3.org/2000/svg';
  var state = { resp: 0, metric: 'waad' };
  var tip = document.getElementById('tip');

  // ---------- helpers ----------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in (attrs || {})) {
      if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    return e;
  }
  function fmt(x) {
    if (x === null || x === undefined || (typeof x === 'number' && !isFinite(x))) return '\u2013';
    if (typeof x !== 'number') return String(x);
    if (x === 0) return '0';
    var a = Math.abs(x);
    if (a >= 1000 || a < 1e-3) return x.toExponential(2);
    return x.toPrecision(4).replace(/\.?0+$/, '');
  }
  function hex(c) { return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)]; }
  function ramp(stops) {
    var cs = stops.map(hex);
    return function (t) {
      t = Math.max(0, Math.min(1, t));
      var x = t * (cs.length - 1), i = Math.min(cs.length - 2, Math.floor(x)), f = x - i;
      var a = cs[i], b = cs[i + 1];
      return [0, 1, 2].map(function (j) { return Math.round(a[j] + (b[j] - a[j]) * f); });
    };
  }
  function rgb(c, alpha) { return alpha === undefined ? 'rgb(' + c.join(',') + ')' : 'rgba(' + c.join(',') + ',' + alpha + ')'; }
  var METRICS = {
    waad: { label: 'WAAD', key: 'waad', ramp: ramp(['#ffffff', '#ffe8cc', '#ffa94d', '#e8590c']), color: '#d9480f' },
    fai: { label: 'FAI', key: 'fai', ramp: ramp(['#ffffff', '#dbe4ff', '#748ffc', '#364fc7']), color: '#3b5bdb' },
    receiver_fai: { label: 'receiver FAI', key: 'receiver_fai', ramp: ramp(['#ffffff', '#f3d9fa', '#da77f2', '#9c36b5']), color: '#9c36b5' },
    entropy: { label: 'entropy', key: 'entropy', ramp: ramp(['#ffffff', '#d3f9d8', '#69db7c', '#2b8a3e']), color: '#2b8a3e' },
    none: { label: 'none', key: null }
  };
  var VIRIDIS = ramp(['#0d0887', '#5c01a6', '#9c179e', '#cc4778', '#ed7953', '#fdb42f', '#f0f921']);
  function series(r, key) { return r.tokens.map(function (t) { return typeof t[key] === 'number' ? t[key] : 0; }); }
  function range(xs) {
    var lo = Infinity, hi = -Infinity;
    xs.forEach(function (x) { if (x < lo) lo = x; if (x > hi) hi = x; });
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + 1e-12;
    return [lo, hi];
  }
  function quantile(xs, q) {
    var s = xs.slice().sort(function (a, b) { return a - b; });
    if (!s.length) return 0;
    return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))];
  }
  function showTip(html, ev) {
    tip.innerHTML = html;
    tip.style.display = 'block';
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 8) x = ev.clientX - w - 14;
    if (y + h > window.innerHeight - 8) y = ev.clientY - h - 14;
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hideTip() { tip.style.display = 'none'; }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; }); }
  function visible(text) { return text.replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5').replace(/ /g, '\u2423'); }
  function tokenTip(t) {
    var flags = [];
    if (t.preplan) flags.push('preplan');
    if (t.anchor) flags.push('anchor');
    if (t.dominated) flags.push('locally dominated');
    if (t.intro) flags.push('intro');
    var rows = [['WAAD', t.waad], ['FAI', t.fai], ['receiver FAI', t.receiver_fai], ['entropy', t.entropy],
      ['\u0394 (WAAD drop)', t.delta], ['log p', t.logprob]];
    return '<div class="h">#' + t.pos + ' \u00b7 \u201c' + esc(visible(t.text)) + '\u201d \u00b7 chunk ' + t.chunk + '</div><table>' +
      rows.map(function (r) { return '<tr><td>' + r[0] + '</td><td class="n">' + fmt(r[1]) + '</td></tr>'; }).join('') +
      '</table>' + (flags.length ? '<div class="flags">' + flags.join(' \u00b7 ') + '</div>' : '');
  }

  // ---------- header ----------
  function renderHeader() {
    var p = DATA.params, g = DATA.generation;
    var h = document.getElementById('head');
    h.innerHTML = '';
    h.appendChild(el('h1', {}, [document.createTextNode('rhythm '), el('span', { cls: 'accent', text: 'preplan-and-anchor analysis' })]));
    h.appendChild(el('div', { cls: 'sub', text: DATA.model + ' \u00b7 ' + DATA.model_type + ' \u00b7 ' + DATA.num_layers + ' layers \u00d7 ' + DATA.num_heads + ' heads \u00b7 probed layers ' + DATA.layers.join(', ') }));
    var chips = ['W = ' + p.window, 'FAI horizon ' + p.horizon[0] + ':' + p.horizon[1], 'q = ' + p.q, '\u03c1 = ' + p.head_ratio,
      'receivers ' + p.receiver_ratio, 'proximity ' + p.proximity, 'k = ' + p.k, 'temperature ' + g.temperature, 'seed ' + g.seed];
    h.appendChild(el('div', { cls: 'chips' }, chips.map(function (c) { return el('span', { cls: 'chip', text: c }); })));
  }
  function renderTabs() {
    var t = document.getElementById('tabs');
    t.innerHTML = '';
    if (DATA.responses.length < 2) return;
    DATA.responses.forEach(function (r, i) {
      var p = r.prompt.replace(/\s+/g, ' ').trim();
      if (p.length > 26) p = p.slice(0, 25) + '\u2026';
      var b = el('button', { cls: i === state.resp ? 'on' : '', text: (i + 1) + ' \u00b7 ' + p, title: r.origin + ': ' + r.prompt });
      b.addEventListener('click', function () { state.resp = i; renderAll(); });
      t.appendChild(b);
    });
  }

  // ---------- response text ----------
  var tokEls = [];
  var cursorHooks = [];
  function setCursor(i) {
    tokEls.forEach(function (e, j) { e.classList.toggle('hl', j === i); });
    cursorHooks.forEach(function (f) { f(i); });
  }
  function renderText(r) {
    var box = document.getElementById('text-card');
    box.innerHTML = '';
    box.appendChild(el('h2', { text: 'Response' }));
    box.appendChild(el('p', { cls: 'lead', text: 'Each token tinted by the chosen metric. Orange underline: preplan token (large WAAD drop, top ' + Math.round(DATA.params.q * 100) + '% of \u0394). Blue dot: anchor (top FAI); pink dot: locally dominated anchor, dotted underline: its intro token. Bars mark chunk onsets (the WAAD sawtooth). Hover for the numbers.' }));
    var st = el('div', { cls: 'stats' });
    [['response tokens', r.n], ['prompt tokens', r.response_start], ['chunks', r.chunks], ['preplan', r.counts.preplan],
      ['anchors', r.counts.anchors], ['dominated', r.counts.dominated], ['\u03c4 WAAD', fmt(r.tau_waad)], ['\u03c4 \u0394', fmt(r.tau_delta)]]
      .forEach(function (kv) { st.appendChild(el('div', { cls: 'stat' }, [el('div', { cls: 'k', text: kv[0] }), el('div', { cls: 'v', text: String(kv[1]) })])); });
    box.appendChild(st);
    var bar = el('div', { cls: 'toolbar' });
    var seg = el('div', { cls: 'seg', id: 'metric-toggle' });
    ['waad', 'fai', 'receiver_fai', 'entropy', 'none'].forEach(function (m) {
      var b = el('button', { cls: m === state.metric ? 'on' : '', text: METRICS[m].label, 'data-metric': m });
      b.addEventListener('click', function () { state.metric = m; renderText(r); });
      seg.appendChild(b);
    });
    bar.appendChild(el('span', { cls: 'hint', text: 'tint by' }));
    bar.appendChild(seg);
    var m = METRICS[state.metric];
    var xs = m.key ? series(r, m.key) : [];
    var lo = m.key ? range(xs)[0] : 0;
    var hi = m.key ? Math.max(quantile(xs, 0.98), lo + 1e-12) : 1;
    var leg = el('div', { cls: 'legend' });
    if (m.key) {
      var grad = el('span', { cls: 'grad' });
      grad.style.background = 'linear-gradient(90deg,' + [0, .33, .66, 1].map(function (t) { return rgb(m.ramp(t)); }).join(',') + ')';
      leg.appendChild(el('span', {}, [document.createTextNode(fmt(lo)), grad, document.createTextNode('\u2265 ' + fmt(hi))]));
    }
    bar.appendChild(leg);
    box.appendChild(bar);
    box.appendChild(el('div', { cls: 'prompt' }, [el('b', { text: 'prompt' }), document.createTextNode(r.prompt)]));
    var text = el('div', { cls: 'text', id: 'tokens' });
    tokEls = [];
    var prev = -1;
    r.tokens.forEach(function (t, i) {
      if (t.chunk !== prev && i > 0) text.appendChild(el('span', { cls: 'cb', 'data-chunk': String(t.chunk) }));
      prev = t.chunk;
      var cls = 'tok' + (t.preplan ? ' pp' : '') + (t.anchor ? ' an' : '') + (t.dominated ? ' dom' : '') + (t.intro ? ' intro' : '');
      var s = el('span', { cls: cls, 'data-pos': String(t.pos) });
      var shown = t.text.length ? t.text : '\u2205';
      if (/^\s+$/.test(shown)) {
        s.appendChild(el('span', { cls: 'ws', text: shown.replace(/\n/g, '\u21b5\n').replace(/ /g, '\u00b7') }));
      } else {
        s.textContent = shown;
      }
      if (m.key) s.style.background = rgb(m.ramp((t[m.key] - lo) / (hi - lo)), 0.92);
      s.addEventListener('mousemove', function (ev) { setCursor(i); showTip(tokenTip(t), ev); });
      s.addEventListener('mouseleave', function () { setCursor(-1); hideTip(); });
      text.appendChild(s);
      tokEls.push(s);
    });
    box.appendChild(text);
  }

  // ---------- curves ----------
  function renderCurves(r) {
    var card = document.getElementById('curves-card');
    card.innerHTML = '';
    card.appendChild(el('h2', { text: 'WAAD, FAI and entropy along the response' }));
    card.appendChild(el('p', { cls: 'lead', text: 'Aligned by token, as in the paper\u2019s figure 2. WAAD (local heads) saws down at preplan tokens (\u25bc); FAI (global heads, solid) and receiver-head FAI (dashed) peak at anchors (\u25cf). Grey lines: chunk onsets.' }));
    var wrap = el('div', { cls: 'chart-wrap', id: 'curves' });
    card.appendChild(wrap);
    var W = Math.max(480, wrap.clientWidth || card.clientWidth - 44 || 1000);
    var panels = [
      { key: 'waad', label: 'WAAD', color: METRICS.waad.color, marks: 'preplan' },
      { key: 'fai', label: 'FAI', color: METRICS.fai.color, marks: 'anchor', extra: 'receiver_fai' },
      { key: 'entropy', label: 'entropy (nats)', color: METRICS.entropy.color }
    ];
    var PH = 120, GAP = 14, ML = 64, MR = 14, MT = 8, MB = 30;
    var H = MT + panels.length * PH + (panels.length - 1) * GAP + MB;
    var svg = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    var n = r.n, pw = W - ML - MR;
    function X(i) { return ML + (n <= 1 ? pw / 2 : i * pw / (n - 1)); }
    var onsets = [];
    r.tokens.forEach(function (t, i) { if (i > 0 && t.chunk !== r.tokens[i - 1].chunk) onsets.push(i); });
    panels.forEach(function (p, k) {
      var y0 = MT + k * (PH + GAP);
      var xs = series(r, p.key);
      var all = p.extra ? xs.concat(series(r, p.extra)) : xs;
      var rg = range(all), lo = Math.min(0, rg[0]), hi = rg[1] + (rg[1] - lo) * 0.06;
      function Y(v) { return y0 + PH - (v - lo) / (hi - lo) * PH; }
      svg.appendChild(sv('rect', { x: ML, y: y0, width: pw, height: PH, fill: '#fafbfe', stroke: '#e3e6ef' }));
      [0, 0.5, 1].forEach(function (f) {
        var v = lo + (hi - lo) * f;
        svg.appendChild(sv('line', { x1: ML, x2: ML + pw, y1: Y(v), y2: Y(v), stroke: '#eef0f6' }));
        svg.appendChild(sv('text', { x: ML - 6, y: Y(v) + 4, 'text-anchor': 'end', 'font-size': 10.5, fill: '#868e96', text: fmt(v) }));
      });
      onsets.forEach(function (i) { svg.appendChild(sv('line', { x1: X(i) - 0.5, x2: X(i) - 0.5, y1: y0, y2: y0 + PH, stroke: '#ced4da', 'stroke-width': 1 })); });
      svg.appendChild(sv('text', { x: 12, y: y0 + PH / 2, transform: 'rotate(-90 12 ' + (y0 + PH / 2) + ')', 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 600, fill: p.color, text: p.label }));
      function path(vals) { return vals.map(function (v, i) { return (i ? 'L' : 'M') + X(i).toFixed(1) + ' ' + Y(v).toFixed(1); }).join(''); }
      if (p.key === 'entropy') {
        svg.appendChild(sv('path', { d: path(xs) + 'L' + X(n - 1).toFixed(1) + ' ' + Y(lo) + 'L' + X(0).toFixed(1) + ' ' + Y(lo) + 'Z', fill: p.color, 'fill-opacity': 0.12, stroke: 'none' }));
      }
      if (p.extra) svg.appendChild(sv('path', { d: path(series(r, p.extra)), fill: 'none', stroke: METRICS.receiver_fai.color, 'stroke-width': 1.3, 'stroke-dasharray': '4 3', 'stroke-opacity': 0.85 }));
      svg.appendChild(sv('path', { d: path(xs), fill: 'none', stroke: p.color, 'stroke-width': 1.7, 'stroke-linejoin': 'round' }));
      if (p.marks) {
        r.tokens.forEach(function (t, i) {
          if (!t[p.marks]) return;
          if (p.marks === 'preplan') {
            var x = X(i), y = Y(xs[i]) - 5;
            svg.appendChild(sv('path', { d: 'M' + (x - 3.5) + ' ' + (y - 5) + 'L' + (x + 3.5) + ' ' + (y - 5) + 'L' + x + ' ' + y + 'Z', fill: '#f08c00' }));
          } else {
            svg.appendChild(sv('circle', { cx: X(i), cy: Y(xs[i]), r: 2.8, fill: t.dominated ? '#e64980' : '#1c7ed6', stroke: '#fff', 'stroke-width': 0.8 }));
          }
        });
      }
    });
    var yb = MT + panels.length * PH + (panels.length - 1) * GAP;
    var step = Math.max(1, Math.ceil(n / 12 / 5) * 5);
    for (var i = 0; i < n; i += step) {
      svg.appendChild(sv('line', { x1: X(i), x2: X(i), y1: yb, y2: yb + 4, stroke: '#868e96' }));
      svg.appendChild(sv('text', { x: X(i), y: yb + 16, 'text-anchor': 'middle', 'font-size': 10.5, fill: '#868e96', text: String(r.tokens[i].pos) }));
    }
    svg.appendChild(sv('text', { x: ML + pw, y: yb + 28, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7185', text: 'token position \u2192' }));
    var cursor = sv('line', { x1: 0, x2: 0, y1: MT, y2: yb, stroke: '#1d2130', 'stroke-width': 1, 'stroke-opacity': 0.6, visibility: 'hidden' });
    svg.appendChild(cursor);
    var hit = sv('rect', { x: ML, y: MT, width: pw, height: yb - MT, fill: 'transparent' });
    svg.appendChild(hit);
    hit.addEventListener('mousemove', function (ev) {
      var b = svg.getBoundingClientRect();
      var x = (ev.clientX - b.left) * W / b.width;
      var i = n <= 1 ? 0 : Math.round((x - ML) / pw * (n - 1));
      i = Math.max(0, Math.min(n - 1, i));
      setCursor(i);
      showTip(tokenTip(r.tokens[i]), ev);
    });
    hit.addEventListener('mouseleave', function () { setCursor(-1); hideTip(); });
    cursorHooks.push(function (i) {
      if (i < 0) { cursor.setAttribute('visibility', 'hidden'); return; }
      cursor.setAttribute('x1', X(i)); cursor.setAttribute('x2', X(i)); cursor.setAttribute('visibility', 'visible');
    });
    wrap.appendChild(svg);
  }

  // ---------- heatmaps ----------
  function renderMaps(r) {
    var card = document.getElementById('maps-card');
    card.innerHTML = '';
    card.appendChild(el('h2', { text: 'Aggregate attention maps' }));
    card.appendChild(el('p', { cls: 'lead', text: 'Mean attention of the local heads (shortest span) and the global heads (longest span). Rows: response tokens (top to bottom); columns: attended positions, prompt left of the dashed line. Long sequences are averaged into bins; colour is the square root of the mean row mass, scaled to each map\u2019s 99th percentile.' }));
    var grid = el('div', { cls: 'maps', id: 'maps' });
    card.appendChild(grid);
    [['local', 'Local heads', r.groups.local], ['global', 'Global heads', r.groups.global]].forEach(function (g) {
      var m = r.maps[g[0]];
      var box = el('div', { cls: 'map' });
      box.appendChild(el('h3', { text: g[1] + ' (' + g[2].length + ')' }));
      box.appendChild(el('div', { cls: 'note', text: g[2].map(function (h) { return 'L' + h[0] + 'H' + h[1]; }).join(' ') + (m ? ' \u00b7 ' + m.rows + ' \u00d7 ' + m.cols + ' bins' : '') }));
      var frame = el('div', { cls: 'frame' });
      box.appendChild(frame);
      if (m) {
        var c = el('canvas', { width: m.cols, height: m.rows });
        frame.appendChild(c);
        var ctx = c.getContext('2d');
        var img = ctx.createImageData(m.cols, m.rows);
        var vals = m.cells.map(function (v) { return Math.sqrt(Math.max(0, v || 0)); });
        var top = Math.max(quantile(vals.filter(function (v) { return v > 0; }), 0.99), 1e-12);
        vals.forEach(function (v, i) {
          var col = VIRIDIS(v / top);
          img.data[4 * i] = col[0]; img.data[4 * i + 1] = col[1]; img.data[4 * i + 2] = col[2]; img.data[4 * i + 3] = 255;
        });
        ctx.putImageData(img, 0, 0);
        var N = r.seq_len, P = r.response_start;
        var pl = el('div', { cls: 'pline' });
        pl.style.left = (100 * P / N) + '%';
        frame.appendChild(pl);
        c.addEventListener('mousemove', function (ev) {
          var b = c.getBoundingClientRect();
          var j = Math.min(m.cols - 1, Math.floor((ev.clientX - b.left) / b.width * m.cols));
          var i = Math.min(m.rows - 1, Math.floor((ev.clientY - b.top) / b.height * m.rows));
          var r0 = P + Math.floor(i * r.n / m.rows), r1 = P + Math.floor((i + 1) * r.n / m.rows) - 1;
          var c0 = Math.floor(j * N / m.cols), c1 = Math.floor((j + 1) * N / m.cols) - 1;
          showTip('<div class="h">' + g[1] + '</div><table><tr><td>rows</td><td class="n">' + r0 + (r1 > r0 ? '\u2013' + r1 : '') +
            '</td></tr><tr><td>columns</td><td class="n">' + c0 + (c1 > c0 ? '\u2013' + c1 : '') + '</td></tr><tr><td>mean mass</td><td class="n">' +
            fmt(m.cells[i * m.cols + j]) + '</td></tr></table>', ev);
        });
        c.addEventListener('mouseleave', hideTip);
      } else {
        frame.appendChild(el('div', { cls: 'hint', text: 'no map' }));
      }
      box.appendChild(el('div', { cls: 'axis' }, [el('span', { text: 'position 0' }), el('span', { text: 'prompt | response \u2192 ' + (r.seq_len - 1) })]));
      grid.appendChild(box);
    });
  }

  // ---------- heads ----------
  function renderHeads(r) {
    var card = document.getElementById('heads-card');
    card.innerHTML = '';
    card.appendChild(el('h2', { text: 'Head spans by layer' }));
    card.appendChild(el('p', { cls: 'lead', text: 'Mean attention distance d of every candidate head (SPEC eq. 7), by layer. The ' + r.groups.local.length + ' shortest are the local heads, the ' + r.groups.global.length + ' longest the global heads; ringed heads are receiver heads (highest kurtosis of vertical attention).' }));
    var leg = el('div', { cls: 'legend' });
    [['local', 'var(--local)'], ['global', 'var(--global)'], ['other', 'var(--other)']].forEach(function (x) {
      var sw = el('span', { cls: 'sw' }); sw.style.background = x[1]; sw.style.borderRadius = '50%'; sw.style.width = '10px';
      leg.appendChild(el('span', {}, [sw, document.createTextNode(x[0])]));
    });
    var ring = el('span', { cls: 'sw' }); ring.style.border = '2px solid #1d2130'; ring.style.borderRadius = '50%'; ring.style.width = '10px';
    leg.appendChild(el('span', {}, [ring, document.createTextNode('receiver')]));
    card.appendChild(leg);
    var wrap = el('div', { cls: 'chart-wrap', id: 'heads' });
    card.appendChild(wrap);
    var layers = DATA.layers, H = 260, ML = 56, MR = 14, MT = 14, MB = 34;
    var W = Math.max(420, wrap.clientWidth || card.clientWidth - 44 || 900);
    var svg = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H });
    var spans = r.heads.map(function (h) { return h.span; });
    var rg = range(spans), lo = Math.min(0, rg[0]), hi = rg[1] * 1.08 + 1e-9;
    var pw = W - ML - MR, ph = H - MT - MB, bw = pw / layers.length;
    function Y(v) { return MT + ph - (v - lo) / (hi - lo) * ph; }
    svg.appendChild(sv('rect', { x: ML, y: MT, width: pw, height: ph, fill: '#fafbfe', stroke: '#e3e6ef' }));
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var v = lo + (hi - lo) * f;
      svg.appendChild(sv('line', { x1: ML, x2: ML + pw, y1: Y(v), y2: Y(v), stroke: '#eef0f6' }));
      svg.appendChild(sv('text', { x: ML - 6, y: Y(v) + 4, 'text-anchor': 'end', 'font-size': 10.5, fill: '#868e96', text: fmt(v) }));
    });
    svg.appendChild(sv('text', { x: 14, y: MT + ph / 2, transform: 'rotate(-90 14 ' + (MT + ph / 2) + ')', 'text-anchor': 'middle', 'font-size': 12, fill: '#495057', text: 'span d (tokens)' }));
    layers.forEach(function (l, k) {
      if (k > 0) svg.appendChild(sv('line', { x1: ML + k * bw, x2: ML + k * bw, y1: MT, y2: MT + ph, stroke: '#e3e6ef' }));
      svg.appendChild(sv('text', { x: ML + (k + 0.5) * bw, y: MT + ph + 18, 'text-anchor': 'middle', 'font-size': 11.5, fill: '#495057', text: 'layer ' + l }));
    });
    var colors = { local: '#0c8599', global: '#7048e8', other: '#adb5bd' };
    r.heads.forEach(function (h) {
      var k = layers.indexOf(h.layer);
      var x = ML + (k + (h.head + 0.5) / DATA.num_heads * 0.8 + 0.1) * bw;
      var c = sv('circle', { cx: x, cy: Y(h.span), r: 5.5, fill: colors[h.group] || '#adb5bd', 'fill-opacity': 0.9, stroke: h.receiver ? '#1d2130' : '#fff', 'stroke-width': h.receiver ? 2.2 : 1 });
      c.addEventListener('mousemove', function (ev) {
        showTip('<div class="h">layer ' + h.layer + ', head ' + h.head + '</div><table><tr><td>span d</td><td class="n">' + fmt(h.span) +
          '</td></tr><tr><td>group</td><td class="n">' + h.group + '</td></tr><tr><td>receiver kurtosis</td><td class="n">' + fmt(h.kurtosis) +
          '</td></tr></table>' + (h.receiver ? '<div class="flags">receiver head</div>' : ''), ev);
      });
      c.addEventListener('mouseleave', hideTip);
      svg.appendChild(c);
    });
    wrap.appendChild(svg);
  }

  function renderAll() {
    var r = DATA.responses[state.resp];
    cursorHooks = [];
    renderTabs();
    renderText(r);
    renderCurves(r);
    renderMaps(r);
    renderHeads(r);
  }
  // Deep links: #metric=fai&resp=2 picks the tint and the response (1-based).
  (location.hash || '').replace(/^#/, '').split('&').forEach(function (kv) {
    var p = kv.split('=');
    if (p[0] === 'metric' && METRICS[p[1]]) state.metric = p[1];
    if (p[0] === 'resp') {
      var i = parseInt(p[1], 10) - 1;
      if (i >= 0 && i < DATA.responses.length) state.resp = i;
    }
  });
  renderHeader();
  renderAll();
  var timer = null;
  window.addEventListener('resize', function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var r = DATA.responses[state.resp];
      cursorHooks = [];
      renderCurves(r);
      renderHeads(r);
    }, 150);
  });
  document.body.setAttribute('data-rendered', 'yes');
})();
