"""What the tests share: crafted-segment connections (:mod:`.crafted`,
:mod:`.modern`), stack pairs (:mod:`.pairs`), simulated paths (:mod:`.paths`),
network namespaces and the kernel (:mod:`.netns`, :mod:`.capabilities`).  Tests
import from here, never from each other."""

from pathlib import Path

#: The checkout, the tests folder, and the shared folder beside the checkout.
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SHARED = ROOT.parent / "shared"
