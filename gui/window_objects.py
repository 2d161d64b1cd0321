"""The Objects panel: list, select, add, rename, recolour, show/hide and delete objects
(each an undoable Session step, through the Controller). A mixin of MainWindow."""
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QColorDialog, QInputDialog, QListWidgetItem, QMessageBox

from gui.widgets import color_icon


class ObjectsMixin:
    def _rebuild_object_list(self):
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
        c = self.controller
        if c.clamp_object() >= 1:
            lw.setCurrentRow(c.obj - 1)
        lw.blockSignals(False)
        colour = objects[c.obj - 1].color if objects and c.obj >= 1 else (255, 255, 255)
        self.canvas.paint_color = QColor(*colour)
        self.btn_obj_del.setEnabled(bool(objects) and not self.busy())
        self.update_status()

    def on_objects_changed(self):
        self._rebuild_object_list()
        self.refresh_view()
        self.flush_workspace()

    def on_object_row(self, row):
        if self.session is not None and 0 <= row < self.session.num_objects:
            self.select_object(row + 1)

    def on_object_item_changed(self, item):
        s = self.session
        oid = item.data(Qt.UserRole)
        if s is not None and 1 <= oid <= s.num_objects:
            visible = item.checkState() == Qt.Checked
            if s.get_object(oid).visible != visible:
                self._try(self.controller.set_visible, oid, visible)
                self._update_undo_actions()

    def select_object(self, obj_id):
        if self.session is None:
            return
        if not 1 <= obj_id <= self.session.num_objects:
            self.log(f'There is no object {obj_id} (Ctrl+N adds one).', 'warning')
            return
        self.controller.select_object(obj_id)
        self._rebuild_object_list()

    def add_object(self):
        if self._can_edit():
            oid = self._try(self.controller.add_object)
            if oid is not None:
                self._rebuild_object_list()
                self._after_edit(f'Added object {oid}')

    def rename_object(self, name=None):
        if not self._can_edit() or self.obj < 1:
            return
        o = self.session.get_object(self.obj)
        if name is None:
            name, ok = QInputDialog.getText(self, 'Rename object', f'Name of object {o.id}:',
                                            text=o.name)
            if not ok:
                return
        self._try(self.controller.rename_object, name)
        self._after_edit()

    def recolor_object(self, color=None):
        if not self._can_edit() or self.obj < 1:
            return
        o = self.session.get_object(self.obj)
        if color is None:
            c = QColorDialog.getColor(QColor(*o.color), self, f'Colour of {o.name}')
            if not c.isValid():
                return
            color = (c.red(), c.green(), c.blue())
        self._try(self.controller.recolor_object, color)
        self._after_edit()

    def toggle_object_visible(self):
        if self._can_edit() and self.obj >= 1:
            self._try(self.controller.toggle_visible)
            self._after_edit()

    def delete_object(self, confirm=True):
        if not self._can_edit() or self.obj < 1:
            return
        o = self.session.get_object(self.obj)
        if confirm and QMessageBox.question(
                self, 'Delete object', f'Delete "{o.name}" and its masks in every frame? '
                'Objects above it move down by one (Undo brings it back).') != QMessageBox.Yes:
            return
        if self._try(self.controller.delete_object) is not None:
            self._rebuild_object_list()
            self._after_edit(f'Deleted object {o.id} ({o.name})')
