"""Where the parts sit in the window: the frame view in the middle, the Controls dock on the
right (the panels' boxes, top to bottom), the Messages dock at the bottom. The parts build
their own widgets (gui/frame_view.py, gui/objects_panel.py, gui/tools_panel.py, ...)."""
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QDockWidget, QVBoxLayout, QWidget


def place(window, central, boxes, console):
    """Put `central` in the middle, `boxes` in the Controls dock and `console` in the
    Messages dock; returns the Messages dock (the View menu shows / hides it)."""
    window.setCentralWidget(central)
    side = QWidget()
    sl = QVBoxLayout(side)
    sl.setContentsMargins(4, 4, 4, 4)
    for box in boxes:
        sl.addWidget(box)
    sl.addStretch(1)
    dock = QDockWidget('Controls', window)
    dock.setObjectName('controls')
    dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
    dock.setWidget(side)
    window.addDockWidget(Qt.RightDockWidgetArea, dock)

    cdock = QDockWidget('Messages', window)
    cdock.setObjectName('messages')
    cdock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable |
                      QDockWidget.DockWidgetClosable)
    cdock.setWidget(console)
    window.addDockWidget(Qt.BottomDockWidgetArea, cdock)
    console.setMaximumHeight(140)
    return cdock
