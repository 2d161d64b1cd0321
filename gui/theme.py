"""The dark Fusion theme of the window."""
from PyQt5.QtGui import QColor, QPalette


def apply_dark_theme(app):
    app.setStyle('Fusion')
    pal = QPalette()
    base, alt, text = QColor(43, 45, 48), QColor(53, 55, 59), QColor(220, 222, 226)
    pal.setColor(QPalette.Window, base)
    pal.setColor(QPalette.WindowText, text)
    pal.setColor(QPalette.Base, QColor(33, 34, 37))
    pal.setColor(QPalette.AlternateBase, alt)
    pal.setColor(QPalette.ToolTipBase, QColor(60, 63, 67))
    pal.setColor(QPalette.ToolTipText, text)
    pal.setColor(QPalette.Text, text)
    pal.setColor(QPalette.Button, alt)
    pal.setColor(QPalette.ButtonText, text)
    pal.setColor(QPalette.BrightText, QColor(255, 90, 90))
    pal.setColor(QPalette.Highlight, QColor(47, 128, 196))
    pal.setColor(QPalette.HighlightedText, QColor(255, 255, 255))
    pal.setColor(QPalette.Link, QColor(79, 195, 247))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor(120, 122, 126))
    app.setPalette(pal)
    app.setStyleSheet(
        'QToolTip { color: #e0e0e0; background: #3c3f43; border: 1px solid #5a5d61; }'
        'QDockWidget::title { padding: 4px; background: #35373b; }'
        'QGroupBox { border: 1px solid #4a4d52; border-radius: 4px; margin-top: 8px; padding-top: 6px; }'
        'QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; }'
        'QToolBar { spacing: 2px; border: none; }'
        'QToolButton:checked { background: #2f80c4; border-radius: 3px; }'
        'QPlainTextEdit#console { font-family: monospace; font-size: 9pt; }')
