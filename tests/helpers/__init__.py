"""What the tests share: crafted-segment connections (:mod:`.crafted`,
:mod:`.modern`), stack pairs (:mod:`.pairs`), simulated paths (:mod:`.paths`),
network namespaces and the kernel (:mod:`.netns`, :mod:`.capabilities`).  Tests
import from here, never from each other."""
