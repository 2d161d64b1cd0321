"""The Objects panel: list, select, add, rename, recolour, show/hide and delete objects (each
an undoable Session step, through the Controller). The list is rebuilt when the Session says
the objects changed (`on_session_changed`), never by the verbs themselves."""
from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import (QColorDialog, QGroupBox, QHBoxLayout, QInputDialog, QListWidget,
                             QListWidgetItem, QMessageBox, QVBoxLayout)

from gui.widgets import color_icon, tool_button


class ObjectsPanel(QObject):
    selectionChanged = pyqtSignal()

    def __init__(self, window, controller, document, gate, canvas):
        super().__init__(window)
        self.window, self.controller, self.document = window, controller, document
        self.gate, self.canvas = gate, canvas
        self.messages = gate.messages
        self.box = QGroupBox('Objects')
        ol = QVBoxLayout(self.box)
        self.object_list = lw = QListWidget()
        lw.setToolTip('Objects: select with 1-9 or a click; tick = visible; double-click to '
                      'rename')
        lw.currentRowChanged.connect(self._on_row)
        lw.itemChanged.connect(self._on_item_changed)
        lw.itemDoubleClicked.connect(lambda _i: self.rename())
        lw.setMinimumHeight(120)
        ol.addWidget(lw)
        row = QHBoxLayout()
        self.btn_add = tool_button('add', 'Add an object (N)', self.add)
        self.btn_rename = tool_button('rename', 'Rename the object', self.rename)
        self.btn_color = tool_button('color', 'Change the object colour', self.recolor)
        self.btn_hide = tool_button('eye', 'Hide / show the object (H)', self.toggle_visible)
        self.btn_del = tool_button('remove', 'Delete the object (all its masks)', self.delete)
        for b in (self.btn_add, self.btn_rename, self.btn_color, self.btn_hide, self.btn_del):
            row.addWidget(b)
        row.addStretch(1)
        ol.addLayout(row)
        gate.changed.connect(self._on_gate)

    session = property(lambda self: self.document.session)

    def rebuild(self):
        s, lw = self.session, self.object_list
        lw.blockSignals(True)
        lw.clear()
        objects = s.objects if s is not None else []
        for o in objects:
            key = f'{o.id}  ' if o.id <= 9 else ''
            it = QListWidgetItem(color_icon(o.color, hidden=not o.visible), f'{key}{o.name}')
            it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
            it.setCheckState(Qt.Checked if o.visible else Qt.Unchecked)
            it.setData(Qt.UserRole, o.id)
            lw.addItem(it)
        lw.blockSignals(False)
        self.controller.clamp_object()
        self.show_selection(objects)
        self.btn_del.setEnabled(bool(objects) and not self.gate.busy())

    def show_selection(self, objects=None):
        """The controller's object: selected in the list, its colour for the brush preview."""
        c, lw = self.controller, self.object_list
        if objects is None:
            objects = self.session.objects if self.session is not None else []
        if c.obj >= 1:
            lw.blockSignals(True)
            lw.setCurrentRow(c.obj - 1)
            lw.blockSignals(False)
        colour = objects[c.obj - 1].color if objects and c.obj >= 1 else (255, 255, 255)
        self.canvas.paint_color = QColor(*colour)
        self.selectionChanged.emit()

    def on_session_changed(self, _frames, objects):
        if objects:
            self.rebuild()

    def _on_gate(self):
        edit = self.gate.editable()
        for b in (self.btn_add, self.btn_rename, self.btn_color, self.btn_del):
            b.setEnabled(edit)

    def _on_row(self, row):
        if self.session is not None and 0 <= row < self.session.num_objects:
            self.select(row + 1)

    def _on_item_changed(self, item):
        s = self.session
        oid = item.data(Qt.UserRole)
        if s is not None and 1 <= oid <= s.num_objects:
            visible = item.checkState() == Qt.Checked
            if s.get_object(oid).visible != visible:
                self.gate.apply(self.controller.set_visible, oid, visible)

    def select(self, obj_id):
        if self.session is None:
            return
        if not 1 <= obj_id <= self.session.num_objects:
            self.messages.log(f'There is no object {obj_id} (Ctrl+N adds one).', 'warning')
            return
        self.controller.select_object(obj_id)
        self.show_selection()

    def add(self):
        if self.gate.can_edit():
            oid = self.gate.apply(self.controller.add_object)
            if oid is not None:
                self.messages.log(f'Added object {oid}')

    def rename(self, name=None):
        if not self.gate.can_edit() or self.controller.obj < 1:
            return
        o = self.session.get_object(self.controller.obj)
        if name is None:
            name, ok = QInputDialog.getText(self.window, 'Rename object',
                                            f'Name of object {o.id}:', text=o.name)
            if not ok:
                return
        self.gate.apply(self.controller.rename_object, name)

    def recolor(self, color=None):
        if not self.gate.can_edit() or self.controller.obj < 1:
            return
        o = self.session.get_object(self.controller.obj)
        if color is None:
            c = QColorDialog.getColor(QColor(*o.color), self.window, f'Colour of {o.name}')
            if not c.isValid():
                return
            color = (c.red(), c.green(), c.blue())
        self.gate.apply(self.controller.recolor_object, color)

    def toggle_visible(self):
        if self.gate.can_edit() and self.controller.obj >= 1:
            self.gate.apply(self.controller.toggle_visible)

    def delete(self, confirm=True):
        if not self.gate.can_edit() or self.controller.obj < 1:
            return
        o = self.session.get_object(self.controller.obj)
        if confirm and QMessageBox.question(
                self.window, 'Delete object', f'Delete "{o.name}" and its masks in every frame? '
                'Objects above it move down by one (Undo brings it back).') != QMessageBox.Yes:
            return
        if self.gate.apply(self.controller.delete_object) is not None:
            self.messages.log(f'Deleted object {o.id} ({o.name})')
