"""A policy server for one fake checkpoint (tests of eval-series): answers the rad_vqa questions of
tests/test_evaluate.py, the open one right only from global_step_4 on.

    python tests/fake_checkpoint_server.py MODEL_DIR PORT
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medix_verl.devkit.fake_judge import FakeJudge


def main() -> None:
    model, port = sys.argv[1], int(sys.argv[2])
    step = int(model.split("global_step_")[1].split("/")[0])

    def answer(payload):
        content = payload["messages"][-1]["content"]
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        if "fracture" in text:
            return "yes"
        return "liver" if step >= 4 else "spleen"

    with FakeJudge(chat_policy=answer, port=port):
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
