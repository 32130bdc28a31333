-- Demo rows of the complements' child tables (docs/tables.md §2, "Complements"): one export
-- invoice with Comercio Exterior 2.0 (id 1) and one traslado with Carta Porte 3.1 (id 2), in a
-- SQLite database. The tables are those of
--   cfdi-connector tables-ddl --dialect sqlite
--   cfdi-connector tables-ddl --dialect sqlite --complemento comercio_exterior --complemento carta_porte
-- Load it with:  sqlite3 erp.sqlite < tablas-complementos.sql
-- and stamp it with the source of tablas-complementos.toml. Money is TEXT in SQLite (exact).
-- The child rows go first, the invoice's estado = 'PENDIENTE' last.

CREATE TABLE cfdi_factura (
    id INTEGER PRIMARY KEY,
    serie TEXT,
    folio TEXT,
    fecha TEXT,
    tipo_comprobante TEXT,
    receptor_rfc TEXT,
    receptor_nombre TEXT,
    receptor_cp TEXT,
    receptor_regimen TEXT,
    uso_cfdi TEXT,
    forma_pago TEXT,
    metodo_pago TEXT,
    moneda TEXT,
    tipo_cambio TEXT,
    condiciones_pago TEXT,
    estado TEXT,
    uuid TEXT,
    fecha_timbrado TEXT,
    referencia TEXT,
    error_codigo TEXT,
    error_mensaje TEXT,
    xml TEXT,
    acuse TEXT,
    actualizado_en TEXT,
    reclamado_por TEXT,
    reclamado_hasta TEXT,
    intentos INTEGER DEFAULT 0 NOT NULL
);

CREATE INDEX ix_cfdi_factura_estado ON cfdi_factura (estado, id);

CREATE TABLE cfdi_concepto (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    clave_prod_serv TEXT,
    no_identificacion TEXT,
    cantidad TEXT,
    clave_unidad TEXT,
    unidad TEXT,
    descripcion TEXT,
    valor_unitario TEXT,
    descuento TEXT,
    objeto_imp TEXT,
    iva_tasa TEXT,
    iva_retencion_tasa TEXT,
    isr_retencion_tasa TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cancelacion (
    id INTEGER PRIMARY KEY,
    uuid TEXT,
    factura_id INTEGER,
    motivo TEXT,
    folio_sustitucion TEXT,
    estado TEXT,
    estatus_sat TEXT,
    es_cancelable TEXT,
    error_codigo TEXT,
    error_mensaje TEXT,
    acuse TEXT,
    actualizado_en TEXT,
    reclamado_por TEXT,
    reclamado_hasta TEXT
);

CREATE INDEX ix_cfdi_cancelacion_estado ON cfdi_cancelacion (estado, id);

CREATE TABLE cfdi_cce (
    factura_id INTEGER NOT NULL,
    exportacion TEXT,
    receptor_residencia_fiscal TEXT,
    receptor_num_reg_id_trib TEXT,
    version TEXT,
    motivo_traslado TEXT,
    clave_de_pedimento TEXT,
    certificado_origen TEXT,
    num_certificado_origen TEXT,
    numero_exportador_confiable TEXT,
    incoterm TEXT,
    observaciones TEXT,
    tipo_cambio_usd TEXT,
    total_usd TEXT,
    emisor_curp TEXT,
    emisor_calle TEXT,
    emisor_numero_exterior TEXT,
    emisor_numero_interior TEXT,
    emisor_colonia TEXT,
    emisor_localidad TEXT,
    emisor_referencia TEXT,
    emisor_municipio TEXT,
    emisor_estado TEXT,
    emisor_pais TEXT,
    emisor_codigo_postal TEXT,
    cce_receptor_num_reg_id_trib TEXT,
    receptor_calle TEXT,
    receptor_numero_exterior TEXT,
    receptor_numero_interior TEXT,
    receptor_colonia TEXT,
    receptor_localidad TEXT,
    receptor_referencia TEXT,
    receptor_municipio TEXT,
    receptor_estado TEXT,
    receptor_pais TEXT,
    receptor_codigo_postal TEXT,
    PRIMARY KEY (factura_id)
);

CREATE TABLE cfdi_cce_propietario (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    num_reg_id_trib TEXT,
    residencia_fiscal TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cce_destinatario (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    num_reg_id_trib TEXT,
    nombre TEXT,
    calle TEXT,
    numero_exterior TEXT,
    numero_interior TEXT,
    colonia TEXT,
    localidad TEXT,
    referencia TEXT,
    municipio TEXT,
    estado TEXT,
    pais TEXT,
    codigo_postal TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cce_mercancia (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    no_identificacion TEXT,
    fraccion_arancelaria TEXT,
    cantidad_aduana TEXT,
    unidad_aduana TEXT,
    valor_unitario_aduana TEXT,
    valor_dolares TEXT,
    marca TEXT,
    modelo TEXT,
    sub_modelo TEXT,
    numero_serie TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_carta_porte (
    factura_id INTEGER NOT NULL,
    version TEXT,
    id_ccp TEXT,
    transp_internac TEXT,
    entrada_salida_merc TEXT,
    pais_origen_destino TEXT,
    via_entrada_salida TEXT,
    total_dist_rec TEXT,
    registro_istmo TEXT,
    ubicacion_polo_origen TEXT,
    ubicacion_polo_destino TEXT,
    peso_bruto_total TEXT,
    unidad_peso TEXT,
    peso_neto_total TEXT,
    num_total_mercancias INTEGER,
    cargo_por_tasacion TEXT,
    logistica_inversa TEXT,
    regimenes_aduaneros TEXT,
    perm_sct TEXT,
    num_permiso_sct TEXT,
    config_vehicular TEXT,
    peso_bruto_vehicular TEXT,
    placa_vm TEXT,
    anio_modelo_vm INTEGER,
    asegura_resp_civil TEXT,
    poliza_resp_civil TEXT,
    asegura_med_ambiente TEXT,
    poliza_med_ambiente TEXT,
    asegura_carga TEXT,
    poliza_carga TEXT,
    prima_seguro TEXT,
    PRIMARY KEY (factura_id)
);

CREATE TABLE cfdi_cp_ubicacion (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    tipo_ubicacion TEXT,
    id_ubicacion TEXT,
    rfc_remitente_destinatario TEXT,
    nombre_remitente_destinatario TEXT,
    num_reg_id_trib TEXT,
    residencia_fiscal TEXT,
    fecha_hora_salida_llegada TEXT,
    distancia_recorrida TEXT,
    calle TEXT,
    numero_exterior TEXT,
    numero_interior TEXT,
    colonia TEXT,
    localidad TEXT,
    referencia TEXT,
    municipio TEXT,
    estado TEXT,
    pais TEXT,
    codigo_postal TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cp_mercancia (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    bienes_transp TEXT,
    clave_stcc TEXT,
    descripcion TEXT,
    cantidad TEXT,
    clave_unidad TEXT,
    unidad TEXT,
    dimensiones TEXT,
    material_peligroso TEXT,
    cve_material_peligroso TEXT,
    embalaje TEXT,
    descrip_embalaje TEXT,
    peso_en_kg TEXT,
    valor_mercancia TEXT,
    moneda TEXT,
    fraccion_arancelaria TEXT,
    uuid_comercio_ext TEXT,
    tipo_materia TEXT,
    descripcion_materia TEXT,
    tipo_documento TEXT,
    num_pedimento TEXT,
    ident_doc_aduanero TEXT,
    rfc_impo TEXT,
    numero_guia TEXT,
    descrip_guia TEXT,
    peso_guia TEXT,
    cantidad_transporta TEXT,
    id_origen TEXT,
    id_destino TEXT,
    cves_transporte TEXT,
    unidad_peso_merc TEXT,
    peso_bruto TEXT,
    peso_neto TEXT,
    peso_tara TEXT,
    num_piezas INTEGER,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cp_remolque (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    sub_tipo_rem TEXT,
    placa TEXT,
    PRIMARY KEY (factura_id, linea)
);

CREATE TABLE cfdi_cp_figura (
    factura_id INTEGER NOT NULL,
    linea INTEGER NOT NULL,
    tipo_figura TEXT,
    rfc_figura TEXT,
    num_licencia TEXT,
    nombre_figura TEXT,
    num_reg_id_trib_figura TEXT,
    residencia_fiscal_figura TEXT,
    calle TEXT,
    numero_exterior TEXT,
    numero_interior TEXT,
    colonia TEXT,
    localidad TEXT,
    referencia TEXT,
    municipio TEXT,
    estado TEXT,
    pais TEXT,
    codigo_postal TEXT,
    partes_transporte TEXT,
    PRIMARY KEY (factura_id, linea)
);

-- 1: an export of two articles to ACME INC (USD), Comercio Exterior 2.0
INSERT INTO cfdi_cce (factura_id, exportacion, receptor_residencia_fiscal,
    receptor_num_reg_id_trib, clave_de_pedimento, certificado_origen, incoterm,
    tipo_cambio_usd, total_usd, emisor_calle, emisor_numero_exterior, emisor_estado,
    emisor_pais, emisor_codigo_postal, receptor_calle, receptor_numero_exterior,
    receptor_estado, receptor_pais, receptor_codigo_postal)
VALUES (1, '02', 'USA', '121585958', 'A1', '0', 'FOB', '17.500000', '2252.50', 'Av. Juárez',
    '100', 'HID', 'MEX', '42501', 'Main St', '1', 'TX', 'USA', '73301');
INSERT INTO cfdi_cce_mercancia (factura_id, linea, no_identificacion, fraccion_arancelaria,
    cantidad_aduana, unidad_aduana, valor_unitario_aduana, valor_dolares)
VALUES (1, 1, 'USB32', '8523510100', '10', '06', '100.00', '1000.00'),
       (1, 2, 'LAP14', '8471300101', '5', '06', '250.50', '1252.50');
INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv, no_identificacion, cantidad,
    clave_unidad, unidad, descripcion, valor_unitario, objeto_imp, iva_tasa)
VALUES (1, 1, '43201800', 'USB32', '10', 'H87', 'Pieza', 'Memoria USB 32 GB', '100.00', '02',
        '0.000000'),
       (1, 2, '43211503', 'LAP14', '5', 'H87', 'Pieza', 'Computadora portátil', '250.50', '02',
        '0.000000');
INSERT INTO cfdi_factura (id, serie, folio, tipo_comprobante, receptor_rfc, receptor_nombre,
    receptor_cp, receptor_regimen, uso_cfdi, forma_pago, metodo_pago, moneda, tipo_cambio,
    estado)
VALUES (1, 'EX', '1', 'I', 'XEXX010101000', 'ACME INC', '42501', '616', 'S01', '03', 'PUE',
        'USD', '17.50', 'PENDIENTE');

-- 2: a traslado of the company's own goods, Villahermosa → Celaya, Carta Porte 3.1
INSERT INTO cfdi_carta_porte (factura_id, transp_internac, perm_sct, num_permiso_sct,
    config_vehicular, peso_bruto_vehicular, placa_vm, anio_modelo_vm, asegura_resp_civil,
    poliza_resp_civil)
VALUES (2, 'No', 'TPAF01', '0X2XTXZ0X5X0X3X2X1X0', 'C2', '10.50', '501AAA', 2020, 'SW Seguros',
        '123456');
INSERT INTO cfdi_cp_ubicacion (factura_id, linea, tipo_ubicacion, id_ubicacion,
    rfc_remitente_destinatario, nombre_remitente_destinatario, fecha_hora_salida_llegada,
    distancia_recorrida, calle, numero_exterior, estado, pais, codigo_postal)
VALUES (2, 1, 'Origen', 'OR000001', 'EKU9003173C9', 'ESCUELA KEMPER URGATE',
        '2025-06-02 09:00:00', NULL, 'Av. Paseo Tabasco', '1203', 'TAB', 'MEX', '86000'),
       (2, 2, 'Destino', 'DE000001', 'EKU9003173C9', 'ESCUELA KEMPER URGATE',
        '2025-06-03 07:30:00', '1050.50', 'Benito Juárez', '15', 'GUA', 'MEX', '36257');
INSERT INTO cfdi_cp_mercancia (factura_id, linea, bienes_transp, descripcion, cantidad,
    clave_unidad, unidad, material_peligroso, peso_en_kg, cantidad_transporta, id_origen,
    id_destino)
VALUES (2, 1, '52161557', 'Control de juego portátil', '40', 'H87', 'Pieza', 'No', '24.000',
        '40', 'OR000001', 'DE000001');
INSERT INTO cfdi_cp_figura (factura_id, linea, tipo_figura, rfc_figura, num_licencia,
    nombre_figura)
VALUES (2, 1, '01', 'VAAM130719H60', 'a234567890', 'Miguel Vázquez');
INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv, no_identificacion, cantidad,
    clave_unidad, unidad, descripcion, valor_unitario, objeto_imp)
VALUES (2, 1, '52161557', 'GAMEPAD007', '40', 'H87', 'Pieza', 'Control de juego portátil',
        '0.00', '01');
INSERT INTO cfdi_factura (id, serie, folio, tipo_comprobante, receptor_rfc, receptor_nombre,
    receptor_cp, receptor_regimen, uso_cfdi, moneda, estado)
VALUES (2, 'CP', '1', 'T', 'EKU9003173C9', 'ESCUELA KEMPER URGATE', '42501', '601', 'S01', 'MXN',
        'PENDIENTE');
