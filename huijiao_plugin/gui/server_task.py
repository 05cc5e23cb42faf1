"""The panels' one idiom for a blocking exchange-server call: a :class:`ServerTask` in QGIS's task manager
(progress, cancel), its result handed back on the main thread by :func:`start_server_task`.

The client is built on the main thread (it reads the settings and the auth manager) and only its call
runs in the task; a canceled task never hands a result back, even when its request had already finished."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject

from huijiao_plugin.core.exchange.receipts import ReceiptError
from huijiao_plugin.core.exchange.transport import ExchangeError, TransferControl
from huijiao_plugin.core.exchange.upload import TransferCanceledError
from huijiao_plugin.core.package import PackageError
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


class ServerTask(QgsTask):
    """One blocking exchange-server call (list, download, feed, calendar, connection test) in the task
    manager's thread.

    ``func(task)`` returns the result; it reports progress with :meth:`report` and is canceled through
    ``task.control`` (the client stops after the current block). The error is kept as a user message."""

    def __init__(
        self,
        description: str,
        func: Callable[[ServerTask], Any],
        background: bool = False,
        control: TransferControl | None = None,
    ):
        # a background check (the feed's long poll) is canceled silently when QGIS closes: without the
        # flag QGIS 3.40/3.44 ask "cancel these active tasks?" on exit and the desktop stays open
        flags = QgsTask.Flag.CanCancel
        if background:
            flags = flags | QgsTask.Flag.CancelWithoutPrompt
        super().__init__(description, flags)
        self.func = func
        self.control = control or TransferControl()
        self.result: Any = None
        self.error = ""
        self.exception: BaseException | None = None  # what ended the call, for callers that tell kinds apart
        self.canceled_by_user = False
        self.done_bytes = 0
        self.total_bytes = 0
        self.started = time.monotonic()
        self.first_offset: int | None = None

    def report(self, done: int, total: int) -> None:
        if self.first_offset is None:
            self.first_offset = done
            self.started = time.monotonic()
        self.done_bytes, self.total_bytes = done, total
        if total > 0:
            self.setProgress(100.0 * done / total)

    def run(self) -> bool:
        try:
            self.result = self.func(self)
            return not self.isCanceled()
        except TransferCanceledError as error:
            self.exception = error
            self.canceled_by_user = True
            self.error = tr("The download was canceled.")
        except (ExchangeError, PackageError, ReceiptError) as error:
            self.exception = error
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - a task must never raise; shown to the user
            log.exception("exchange task %s failed", self.description())
            self.exception = error
            self.error = str(error)
        return False

    def cancel(self) -> None:
        self.canceled_by_user = True
        self.control.cancel()
        super().cancel()


class UploadTask(ServerTask):
    """An upload: the panel's 取消 cancels it (``control.cancel()``), but a cancel from outside the panel
    (QGIS closing, the task list) pauses it, so that the next 提交 resumes it where it stopped."""

    def cancel(self) -> None:
        self.control.pause()
        QgsTask.cancel(self)


def start_server_task(owner: QObject, task: QgsTask, done: Callable[[Any, bool], None]) -> Any:
    """Queue ``task`` (a ServerTask or any QgsTask keeping its own ``result``); ``done(task, ok)`` runs on
    the main thread when it ends (``ok`` is False when it failed or the user canceled it), unless ``owner``
    was deleted meanwhile."""

    def finish(ok: bool) -> None:
        if sip.isdeleted(owner):
            return
        done(task, ok and not getattr(task, "canceled_by_user", False) and not task.isCanceled())

    task.taskCompleted.connect(lambda: finish(True))
    task.taskTerminated.connect(lambda: finish(False))
    QgsApplication.taskManager().addTask(task)
    return task
