"""A Qt table model over a pandas DataFrame: the measurement table, fast for many rows
(Qt asks only for the visible cells)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt


class DataFrameModel(QAbstractTableModel):
    """Read-only view of a DataFrame; :meth:`set_table` swaps it in one reset."""

    def __init__(self, table: pd.DataFrame | None = None) -> None:
        super().__init__()
        self.table = table if table is not None else pd.DataFrame()

    def set_table(self, table: pd.DataFrame) -> None:
        self.beginResetModel()
        self.table = table
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.table)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.table.columns)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if role != Qt.DisplayRole or not index.isValid():
            return None
        value = self.table.iat[index.row(), index.column()]
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.4g}"
        return "" if value is None or value is pd.NA else str(value)

    def headerData(self, section: int, orientation: Any, role: int = Qt.DisplayRole) -> Any:
        if role != Qt.DisplayRole:
            return None
        if orientation == Qt.Horizontal:
            return str(self.table.columns[section])
        return str(section)
