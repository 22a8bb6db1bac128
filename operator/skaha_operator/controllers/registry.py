"""Every kind's controller, in one place: the runtime registers its handlers from this list."""

from __future__ import annotations

from skaha_operator.controllers.base import Controller
from skaha_operator.controllers.compute import ComputeController
from skaha_operator.controllers.data import DataController
from skaha_operator.controllers.docker_container import DockerContainerController
from skaha_operator.controllers.jupyter_notebook import JupyterNotebookController
from skaha_operator.controllers.session import SessionController
from skaha_operator.controllers.skaha_platform import SkahaPlatformController
from skaha_operator.controllers.storage import StorageController

CONTROLLERS: tuple[Controller, ...] = (
    SkahaPlatformController(),
    DockerContainerController(),
    JupyterNotebookController(),
    StorageController(),
    DataController(),
    ComputeController(),
    SessionController(),
)
