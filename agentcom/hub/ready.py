"""The queue of tasks ready to run, ordered by (priority, submission order).

Tasks are grouped by what they demand of an agent (needed capabilities and a pinned
agent); each group is a heap. Picking the next task looks only at group heads, so its
cost does not grow with the queue. Removal is lazy: a popped entry whose task is no
longer ready is skipped.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterator

GroupKey = tuple[frozenset[str], str | None]


class ReadyQueue:
    def __init__(self, is_ready: Callable[[str], bool]) -> None:
        self._groups: dict[GroupKey, list[tuple[int, int, str]]] = {}
        self._is_ready = is_ready
        self._members: set[str] = set()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._members

    def push(self, task_id: str, priority: int, seq: int, needs: frozenset[str], pinned: str | None) -> None:
        if task_id in self._members:
            return
        self._members.add(task_id)
        heapq.heappush(self._groups.setdefault((needs, pinned), []), (priority, seq, task_id))

    def discard(self, task_id: str) -> None:
        """Forget a task; its heap entry is dropped when it reaches the head."""
        self._members.discard(task_id)

    def heads(self) -> Iterator[tuple[tuple[int, int], GroupKey, str]]:
        """The first ready task of each group, with its sort key."""
        for key in list(self._groups):
            heap = self._groups[key]
            while heap and (heap[0][2] not in self._members or not self._is_ready(heap[0][2])):
                _, _, stale = heapq.heappop(heap)
                if stale in self._members and not self._is_ready(stale):
                    self._members.discard(stale)
            if not heap:
                del self._groups[key]
                continue
            priority, seq, task_id = heap[0]
            yield (priority, seq), key, task_id

    def pop(self, key: GroupKey) -> str:
        _, _, task_id = heapq.heappop(self._groups[key])
        self._members.discard(task_id)
        return task_id
