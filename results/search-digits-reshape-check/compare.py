"""Trial-by-trial comparison of the two search outputs in this folder."""
import json
from pathlib import Path

here = Path(__file__).parent
before, after = ([json.loads(line) for line in (here / name).read_text().splitlines() if line.startswith("{")][-1]
                 for name in ("before-1f70172.json", "after.json"))
keys = ("number", "state", "top1", "bops", "ops", "params", "arch")
pairs = list(zip(before["trials"], after["trials"]))
for old, new in pairs:
    print(old["number"], old["state"], old["top1"], new["candidate"],
          "equal" if all(old[k] == new[k] for k in keys) else "DIFFERENT")
same = len(before["trials"]) == len(after["trials"]) and all(all(o[k] == n[k] for k in keys) for o, n in pairs)
print("all trials equal:", same)
