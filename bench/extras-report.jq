# extras-report.jq: the markdown tables of bench/run-extras.sh from its JSON lines
# (jq -s -r -f bench/extras-report.jq results.jsonl). Every line carries group, variant and
# baseline; a cell is the median over the repeats with the range, a ratio is the variant's
# median over its baseline's median in the same group.

def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
  else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def fmt: if . == null then "–" elif . >= 100 then (. | round | tostring)
  elif . >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
def cell($f): [.[] | .[$f]] as $v | ($v | median) as $m |
  if ($v | length) > 1 then "\($m | fmt) (\($v | min | fmt)–\($v | max | fmt))" else ($m | fmt) end;
def med($f): [.[] | .[$f]] | median;
def ratio($a; $b): if $a == null or $b == null or $b == 0 then "–" else "\(($a / $b * 100 | round) / 100)×" end;

. as $all
| [$all[] | .group] | unique as $groups
| ($all | map(.group) | reduce .[] as $g ([]; if index([$g]) then . else . + [$g] end)) as $order
| [$order[] as $g
   | ($all | map(select(.group == $g))) as $rows
   | ($rows | map(.variant) | reduce .[] as $v ([]; if index([$v]) then . else . + [$v] end)) as $variants
   | ($rows | map(select(.variant == $rows[0].baseline))) as $base
   | if ($rows[0].mode == "idle") then
       "### \($g)\n\n| compression | negotiated on | RSS per connection, KiB | ratio to \($rows[0].baseline) |\n|---|---|---|---|\n"
       + ([$variants[] as $v | ($rows | map(select(.variant == $v))) as $r
           | "| \($v) | \($r[0].compressed_conns) of \($r[0].ready) | \($r | cell("rss_per_conn_kb")) | \(ratio($r | med("rss_per_conn_kb"); $base | med("rss_per_conn_kb"))) |"]
          | join("\n"))
     else
       "### \($g)\n\n| variant | subprotocol | compressed | deliveries/s | ratio | server CPU µs/delivery | ratio | envelopes/frame | wire bytes/delivery | ratio | envelope bytes | p50 / p99 ms | other_cpu_cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
       + ([$variants[] as $v | ($rows | map(select(.variant == $v))) as $r
           | "| \($v) | \($r[0].subprotocol // "" | if . == "" then "none" else . end) | \($r[0].compressed_conns // 0) of \($r[0].ready) | \($r | cell("msgs_per_s")) | \(ratio($r | med("msgs_per_s"); $base | med("msgs_per_s"))) | \($r | cell("server_cpu_msg_us")) | \(ratio($r | med("server_cpu_msg_us"); $base | med("server_cpu_msg_us"))) | \($r | cell("msgs_per_frame")) | \($r | cell("wire_bytes_per_msg")) | \(ratio($r | med("wire_bytes_per_msg"); $base | med("wire_bytes_per_msg"))) | \($r | med("frame_bytes") | fmt) | \($r | med("p50_ms") | fmt) / \($r | med("p99_ms") | fmt) | \($r | cell("other_cpu_cores")) |"]
          | join("\n"))
     end
   + "\n"]
| join("\n")
+ ([$all[] | select(.error != "" and .error != null) | "\n- problem in [\(.group)] \(.variant): \(.error)"] | join(""))
